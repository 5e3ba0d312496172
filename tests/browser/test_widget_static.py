"""Browser-free checks of the widget script and the example site (run everywhere, no Chromium needed)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest

from botctld.widget_bundle import bundle

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "examples" / "site"
SECRET = "s3cr3t-" + "x" * 40
EDGE = "http://127.0.0.1:8765"


def _code(src: str) -> str:
    """widget.js without its comments (they document what the code must never do)."""
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", src)


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"\beval\s*\(", "eval (blocked without 'unsafe-eval')"),
        (r"new\s+Function\b", "new Function (blocked without 'unsafe-eval')"),
        (r"setTimeout\(\s*['\"]", "string timers are eval"),
        (
            r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser",
            "HTML sinks (answers and vendor data are text; Trusted Types would refuse them)",
        ),
        (r"setAttribute\(\s*['\"](style|on\w+)['\"]", "inline style attributes or inline handlers"),
        (r"\.style\.|cssText", "inline styles: everything is in the adopted stylesheet"),
        (
            r"localStorage|indexedDB|document\.cookie|caches\.",
            "nothing persists beyond the tab (sessionStorage, below)",
        ),
        (r"mode\s*:\s*['\"]closed['\"]", "the shadow root stays open (tests and assistive tech)"),
    ],
)
def test_widget_avoids_what_a_strict_csp_blocks(pattern, why):
    assert not re.search(pattern, _code(bundle().decode())), why


def test_only_the_transcript_part_touches_storage():
    """sessionStorage holds the conversation (transcript.js); no other part reads or writes storage, so the
    identity token (identity.js's closure) has no path into it but through keep()'s entries."""
    from botctld.widget_bundle import WIDGET_DIR, part_paths

    users = [p.name for p in part_paths() if "sessionStorage" in _code(p.read_text())]
    assert users == ["transcript.js"], users
    identity = _code((WIDGET_DIR / "identity.js").read_text())
    assert "keep(" not in identity and "saveTranscript" not in identity


def test_bundle_is_valid_javascript(tmp_path):
    """Every part joined is one script a JavaScript engine accepts (node --check, where node exists)."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    f = tmp_path / "widget.js"
    f.write_bytes(bundle())
    proc = subprocess.run([node, "--check", str(f)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_every_error_code_has_a_french_message():
    from botctld.openapi import ERROR_CODES
    from botctld.widget_bundle import WIDGET_DIR

    i18n = (WIDGET_DIR / "i18n.js").read_text()
    fr = i18n[i18n.index("    fr: {") :]
    missing = [c for c in ERROR_CODES if f'"err.{c}":' not in fr]
    assert missing == [], missing
    en_keys = set(
        re.findall(r'^\s*"([\w.]+)":', i18n[i18n.index("    en: {") : i18n.index("    fr: {")], flags=re.M)
    )
    en_keys |= set(re.findall(r', "([\w.]+)":', i18n[i18n.index("    en: {") : i18n.index("    fr: {")]))
    fr_keys = set(re.findall(r'(?:^\s*|, )"([\w.]+)":', fr, flags=re.M))
    assert en_keys - fr_keys == set(), sorted(en_keys - fr_keys)  # every English string has its French one


def test_widget_talks_only_to_its_own_origin():
    code = _code(bundle().decode())
    urls = set(re.findall(r"https?://[^\s\"')]+", code))
    assert urls == {"http://www.w3.org/2000/svg"}, urls  # a namespace name, never fetched
    assert 'credentials: "omit"' in code  # no cookies to the edge
    assert "new CSSStyleSheet()" in code and "adoptedStyleSheets" in code and "attachShadow" in code


def test_widget_maps_every_documented_error_code():
    from botctld.openapi import ERROR_CODES

    code = bundle().decode()
    table = code[code.index("var CODE_MESSAGES = {") : code.index("function humanError")]
    handled = set(re.findall(r"^\s*(\w+):", table, flags=re.M)) | {
        "rate_limited",
        "invalid_params",
        "invalid_request",
    }
    missing = set(ERROR_CODES) - handled - {"method_not_allowed"}  # the widget only sends GET/POST it knows
    assert not missing, f"no plain-language message for {sorted(missing)}"
    for code_, text in [
        ("identity_required", "Please sign in to do this."),
        ("invalid_identity", "Your session expired; please sign in again."),
        ("forbidden", "That doesn't belong to your account."),
        ("upstream_error", "The service didn't answer; try again."),
        ("not_connected", "This isn't available right now."),
    ]:
        assert re.search(rf'{code_}: "{re.escape(text)}"', table), code_
    assert "Too many requests; try again in " in code


# -- the example site ---------------------------------------------------------------------------------


def _load_site_module():
    spec = importlib.util.spec_from_file_location("example_site_server", SITE / "server.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site_mod():
    return _load_site_module()


def test_minted_token_is_what_the_daemon_expects(site_mod):
    tok = site_mod.mint_token(site_mod.USERS["ada"], secret=SECRET, kid="k1", workspace="acme", ttl=10_000)
    assert jwt.get_unverified_header(tok) == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    claims = jwt.decode(tok, SECRET, algorithms=["HS256"], audience="acme")
    assert {k: claims[k] for k in ("sub", "email", "name", "aud")} == {
        "sub": "u-ada",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "aud": "acme",
    }
    assert claims["exp"] - claims["iat"] == 600  # capped at 10 minutes whatever --ttl says
    assert abs(claims["iat"] - time.time()) < 5


def test_secret_file_must_be_private(site_mod, tmp_path):
    f = tmp_path / "secret.json"
    f.write_text(json.dumps({"kid": "k20260101-abc", "alg": "HS256", "secret": SECRET}))
    os.chmod(f, 0o644)
    with pytest.raises(SystemExit, match="chmod 600"):
        site_mod.load_secret(str(f), None)
    os.chmod(f, 0o600)
    assert site_mod.load_secret(str(f), None) == (SECRET, "k20260101-abc")
    raw = tmp_path / "raw"
    raw.write_text(SECRET + "\n")
    os.chmod(raw, 0o600)
    assert site_mod.load_secret(str(raw), "kx") == (SECRET, "kx")


@pytest.fixture
def site(site_mod) -> Iterator[str]:
    s = site_mod.Site(edge=EDGE, workspace="acme", secret=SECRET, kid="k1", ttl=300)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), site_mod.make_handler(s, quiet=True))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_site_page_has_the_tag_and_a_strict_csp(site):
    r = httpx.get(site + "/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert (
        f"script-src 'self' {EDGE}" in csp
        and f"connect-src 'self' {EDGE}" in csp
        and "style-src 'self'" in csp
    )
    assert "unsafe" not in csp
    assert (
        f'<script src="{EDGE}/widget.js" data-workspace="acme" data-identity-endpoint="/botctl-token"'
        in r.text
    )
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline for the CSP to refuse
    push = httpx.get(site + "/?mode=push").text
    assert "data-identity-endpoint" not in push


def test_site_token_endpoint(site):
    with httpx.Client(base_url=site) as c:
        assert c.get("/botctl-token").json() == {"token": None}
        # Only the site's own pages may ask (a cross-site fetch could not read it anyway).
        assert c.get("/botctl-token", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert (
            c.post("/login", data={"user": "ada"}, headers={"Origin": "http://evil.test"}).status_code == 403
        )
        r = c.post("/login", data={"user": "ada"}, headers={"Origin": site})
        assert (
            r.status_code == 303
            and "HttpOnly" in r.headers["set-cookie"]
            and "SameSite=Lax" in r.headers["set-cookie"]
        )
        r = c.get("/botctl-token", headers={"Sec-Fetch-Site": "same-origin"})
        assert r.headers["cache-control"] == "no-store"
        claims = jwt.decode(r.json()["token"], SECRET, algorithms=["HS256"], audience="acme")
        assert claims["email"] == "ada@example.com" and claims["exp"] - claims["iat"] == 300
        assert "Signed in as Ada Lovelace" in c.get("/").text
        c.post("/logout", headers={"Origin": site})
        assert c.get("/botctl-token").json() == {"token": None}
        assert c.get("/nope").status_code == 404
