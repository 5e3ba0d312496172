"""The OAuth CLI: `oauth-app set/list/remove`, `connect` (browser, --no-browser, --paste), errors and
their exit codes, `connections refresh`, and `disconnect` revoking (RFC 7009) — real processes
against `InteropAS` (oauthlib) over loopback.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from test_oauth_as import CLIENT_ID, CLIENT_SECRET, InteropAS, browse


@pytest.fixture
def peer():
    with InteropAS() as s:
        yield s


@pytest.fixture
def ws(cli):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    return "acme"


def set_app(cli, peer, *extra: str, connector: str = "calendly", secret: str = CLIENT_SECRET):
    s = peer.app_settings()
    args = [
        "oauth-app",
        "set",
        connector,
        "--client-id",
        CLIENT_ID,
        "--client-secret-stdin",
        "--authorize-url",
        s["authorize_url"],
        "--token-url",
        s["token_url"],
        "--revoke-url",
        s["revoke_url"],
        "--metadata-url",
        s["metadata_url"],
        "--token-auth",
        "client_secret_basic",
        *extra,
    ]
    return cli(*args, input=secret + "\n")


def records(cli, event=None):
    args = ["audit", "--json", "-n", "1000"] + (["--event", event] if event else [])
    return cli(*args).ndjson()


def all_bytes(home) -> list[bytes]:
    return [p.read_bytes() for p in home.path.rglob("*") if p.is_file()]


# -- oauth-app ------------------------------------------------------------------------------------------


def test_oauth_app_set_list_remove_and_the_secret_stays_encrypted(home, cli, ws, peer):
    r = set_app(cli, peer)
    assert r.code == 0, r.err
    assert "redirect URI to register" in r.err
    r = cli(
        "oauth-app",
        "set",
        "calendly",
        "-w",
        "acme",
        "--client-id",
        "ws-client",
        "--client-secret-env",
        "WS_SECRET",
    )
    assert r.code == 2 and "WS_SECRET" in r.err
    os.environ["WS_SECRET"] = "workspace-secret-0123456789"
    try:
        r = cli(
            "oauth-app",
            "set",
            "calendly",
            "-w",
            "acme",
            "--client-id",
            "ws-client",
            "--client-secret-env",
            "WS_SECRET",
            "--redirect-port",
            "8765",
            "--scopes",
            "users:read scheduled_events:read",
            "--json",
        )
    finally:
        del os.environ["WS_SECRET"]
    assert r.code == 0, r.err
    shown = r.json()
    assert shown["scope"] == "acme" and shown["redirect_uri"] == "http://127.0.0.1:8765/callback"
    assert shown["token_auth"] == "client_secret_basic"  # Calendly's default for a confidential web client
    listed = cli("oauth-app", "list", "--json").json()
    assert [(a["connector"], a["scope"], a["client_secret"]) for a in listed] == [
        ("calendly", "global", "set"),
        ("calendly", "acme", "set"),
    ]
    out = (
        cli("oauth-app", "list").out
        + json.dumps(listed)
        + "".join(x["detail"].__repr__() for x in records(cli))
    )
    assert CLIENT_SECRET not in out and "workspace-secret" not in out
    for blob in all_bytes(home):
        assert CLIENT_SECRET.encode() not in blob and b"workspace-secret-0123456789" not in blob
    db = sqlite3.connect(home.vault_db)
    assert db.execute("SELECT count(*) FROM wrapped_keys WHERE name = 'botctl/v1|oauth-apps'").fetchone() == (
        1,
    )
    assert db.execute("SELECT count(*) FROM secrets WHERE owner = 'oauth-app:calendly'").fetchone() == (1,)
    # Both secrets survive both kinds of key rotation.
    assert cli("vault", "rotate-master-key", "--yes").code == 0
    assert cli("workspace", "rotate-key", "acme").code == 0
    from botctl import workspaces
    from botctl.connectors import registry
    from botctl.oauth import apps as oauth_apps
    from botctl.session import Session

    with Session(home) as a:
        w = workspaces.get(a.vault.conn, "acme")
        mine = oauth_apps.resolve(a, w, registry.get("calendly"), {})
        assert mine.client_id == "ws-client" and mine.client_secret.reveal() == "workspace-secret-0123456789"
        glob = oauth_apps.client_secret(a, oauth_apps.find(a.vault.conn, "calendly", None), None)
        assert glob.reveal() == CLIENT_SECRET
    assert cli("oauth-app", "remove", "calendly", "-w", "acme").code == 0
    assert cli("oauth-app", "remove", "calendly", "-w", "acme").code == 3
    assert [a["scope"] for a in cli("oauth-app", "list", "--json").json()] == ["global"]
    assert db.execute("SELECT count(*) FROM secrets WHERE owner = 'oauth-app:calendly'").fetchone() == (0,)
    events = [x["event"] for x in records(cli) if x["event"].startswith("oauth_app.")]
    assert events == ["oauth_app.created", "oauth_app.created", "oauth_app.removed"]
    assert cli("audit", "verify").code == 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["oauth-app", "set", "stripe", "--client-id", "x", "--token-auth", "none"],
            "does not connect with OAuth",
        ),
        (
            [
                "oauth-app",
                "set",
                "calendly",
                "--client-id",
                "x",
                "--token-auth",
                "none",
                "--token-url",
                "http://evil.example/token",
            ],
            "https://",
        ),
        (
            [
                "oauth-app",
                "set",
                "calendly",
                "--client-id",
                "x",
                "--token-auth",
                "none",
                "--redirect-uri",
                "https://example.com/cb",
            ],
            "loopback",
        ),
        (
            [
                "oauth-app",
                "set",
                "calendly",
                "--client-id",
                "x",
                "--token-auth",
                "none",
                "--client-secret-stdin",
            ],
            "public clients",
        ),
        (
            [
                "oauth-app",
                "set",
                "calendly",
                "--client-id",
                "x",
                "--token-auth",
                "bogus",
                "--client-secret-stdin",
            ],
            "--token-auth",
        ),
        (
            [
                "oauth-app",
                "set",
                "zendesk",
                "--client-id",
                "x",
                "--token-auth",
                "none",
                "--token-url",
                "https://{tenant}.example/token",
            ],
            "placeholder",
        ),
        (["oauth-app", "set", "calendly", "--client-id", "x", "--client-secret", "s"], "No such option"),
    ],
)
def test_oauth_app_set_refuses_bad_input(home, cli, args, needle):
    r = cli(*args, input="some-secret\n")
    assert r.code == 2, r.err
    assert needle in r.err and "Traceback" not in r.err


# -- connect through the CLI ----------------------------------------------------------------------------

FAKE_BROWSER = textwrap.dedent("""
    import sys, httpx
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        response = http.get(sys.argv[1])
        while response.is_redirect:
            response = http.get(response.headers["location"])
    with open(sys.argv[2], "w") as out:
        out.write(f"{response.status_code}\\n{response.text}")
""")


def fake_browser_env(tmp_path) -> tuple[dict[str, str], str]:
    script = tmp_path / "browser.py"
    script.write_text(FAKE_BROWSER)
    page = str(tmp_path / "page.txt")
    return {"BROWSER": f"{sys.executable} {script} %s {page}"}, page


def test_connect_opens_the_browser_and_stores_the_grant(home, cli, ws, peer, tmp_path, botctl_proc):
    assert set_app(cli, peer).code == 0
    env, page = fake_browser_env(tmp_path)
    r = botctl_proc("connect", "calendly", "-w", "acme", "--skip-check", "--json", env=env)
    assert r.code == 0, r.err
    assert "Opened your browser" in r.err and "skipped the Calendly account check" in r.err
    conn = r.json()
    assert conn["auth"] == "oauth" and conn["status"] == "active" and conn["oauth"]["client_id"] == CLIENT_ID
    status, _, text = open(page).read().partition("\n")
    assert status == "200" and "botctl is connected; you can close this tab" in text
    assert peer.token_requests == {"authorization_code": 1}
    created = records(cli, "connection.created")[0]
    assert created["detail"]["flow"] == "browser" and created["detail"]["auth"] == "oauth"


def _spawn(*args: str, stdin: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "botctl", *args],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _read_url(proc: subprocess.Popen) -> str:
    deadline = time.time() + 20
    while time.time() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"https?://\S+/authorize\?\S+", line)
        if found:
            return found.group(0)
    raise AssertionError("no authorization URL printed")


def test_connect_no_browser_prints_the_url_and_still_listens(cli, ws, peer):
    assert set_app(cli, peer).code == 0
    proc = _spawn("connect", "calendly", "-w", "acme", "--no-browser", "--skip-check")
    url = _read_url(proc)
    assert browse(url).status_code == 200
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "connected calendly in acme (OAuth, no-browser flow)" in err


def test_connect_paste_reads_the_redirect_back(cli, ws, peer):
    assert set_app(cli, peer, "--redirect-port", "47211").code == 0
    proc = _spawn("connect", "calendly", "-w", "acme", "--paste", "--skip-check", stdin=True)
    url = _read_url(proc)
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    assert redirect == "http://127.0.0.1:47211/callback"
    hop = browse(url, stop_before=redirect)  # the browser on "another machine" cannot load it
    _, err = proc.communicate(hop.headers["location"] + "\n", timeout=20)
    assert proc.returncode == 0, err
    assert "paste flow" in err


def test_connect_paste_with_a_forged_state_fails(home, cli, ws, peer):
    assert set_app(cli, peer).code == 0
    proc = _spawn("connect", "calendly", "-w", "acme", "--paste", "--skip-check", stdin=True)
    url = _read_url(proc)
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    _, err = proc.communicate(f"{redirect}?code=x&state=forged\n", timeout=20)
    assert proc.returncode == 25, err
    assert "state does not match" in err and "Traceback" not in err
    assert peer.token_requests == {}


def test_connect_denied_in_the_browser(home, cli, ws, peer, tmp_path, botctl_proc):
    assert set_app(cli, peer).code == 0
    peer.deny = True
    env, page = fake_browser_env(tmp_path)
    r = botctl_proc("connect", "calendly", "-w", "acme", "--skip-check", "--json", env=env)
    assert r.code == 24, r.err
    assert r.json()["error"]["code"] == "access_denied"
    assert [line for line in r.err.splitlines() if line.startswith("error:")] == [
        "error: the authorization was denied (The user said no); nothing was stored."
    ]
    assert open(page).read().startswith("400")
    assert cli("connections", "list", "--json").json() == []
    assert records(cli, "connection.failed")[0]["reason"] == "access_denied"


def test_connect_timeout_and_usage_errors(home, cli, ws, peer):
    r = cli("connect", "calendly", "-w", "acme", "--no-browser", "--skip-check")
    assert r.code == 2 and "no OAuth app is configured" in r.err and "botctl oauth-app set calendly" in r.err
    assert set_app(cli, peer).code == 0
    r = cli("connect", "calendly", "-w", "acme", "--no-browser", "--timeout", "0.4", "--skip-check")
    assert r.code == 26, r.err
    assert "no answer from the browser within 0.4 s" in r.err and "Traceback" not in r.err
    r = cli("connect", "calendly", "-w", "acme", "--device", "--paste")
    assert r.code == 2 and "choose one of" in r.err
    r = cli("connect", "calendly", "-w", "acme", "--device")
    assert r.code == 2 and "offers no device flow" in r.err
    assert cli("connections", "list", "--json").json() == []
    assert [x["reason"] for x in records(cli, "connection.failed")] == ["timeout", "no_device_flow"]


# -- refresh and disconnect -----------------------------------------------------------------------------


def _connected(cli, peer) -> None:
    assert set_app(cli, peer).code == 0
    proc = _spawn("connect", "calendly", "-w", "acme", "--no-browser", "--skip-check")
    browse(_read_url(proc))
    proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_connections_refresh_and_needs_reauth_hint(home, cli, ws, peer):
    _connected(cli, peer)
    r = cli("connections", "refresh", "calendly", "-w", "acme", "--json")
    assert r.code == 0, r.err
    assert r.json()["refreshed_at"] and peer.token_requests["refresh_token"] == 1
    for rec in peer.refresh.values():
        rec.revoked = True  # the user removed the app at the vendor
    r = cli("connections", "refresh", "calendly", "-w", "acme")
    assert r.code == 21 and "invalid_grant" in r.err and "Reconnect: botctl connect calendly -w acme" in r.err
    r = cli("connections", "list")
    assert "needs_reauth" in r.err and "reconnect: botctl connect calendly -w acme" in r.err
    r = cli("connections", "refresh", "calendly", "-w", "acme")
    assert r.code == 21 and peer.token_requests["refresh_token"] == 2  # refused locally, no request
    r = cli("connections", "refresh", "stripe", "-w", "acme")
    assert r.code == 3


def test_disconnect_revokes_with_rfc7009_then_deletes(home, cli, ws, peer):
    _connected(cli, peer)
    tokens = peer.issued[-1]
    r = cli("disconnect", "calendly", "-w", "acme", "--yes", "--json")
    assert r.code == 0, r.err
    assert r.json()["revoked"] == "yes"
    assert [hint for hint, _ in peer.revocations] == ["refresh_token", "access_token"]
    assert not peer.refresh_token_ok(tokens["refresh_token"]) and peer.access[tokens["access_token"]].revoked
    assert sqlite3.connect(home.vault_db).execute(
        "SELECT count(*) FROM secrets WHERE owner LIKE 'conn_%'"
    ).fetchone() == (0,)
    revoked = records(cli, "connection.revoked")[0]
    assert revoked["outcome"] == "ok" and revoked["detail"]["method"] == "rfc7009"
    assert records(cli, "connection.deleted")[0]["detail"]["revoked"] == "yes"
    log = json.dumps(records(cli))
    assert tokens["refresh_token"] not in log and tokens["access_token"] not in log


def test_disconnect_deletes_even_when_revocation_fails(home, cli, ws, peer):
    _connected(cli, peer)
    peer.__exit__()  # the vendor is unreachable now
    r = cli("disconnect", "calendly", "-w", "acme", "--yes")
    assert r.code == 0, r.err
    assert "revoking at Calendly failed" in r.err
    assert cli("connections", "list", "--json").json() == []
    assert records(cli, "connection.revoked")[0]["outcome"] == "error"
    assert records(cli, "connection.deleted")[0]["detail"]["revoked"].startswith("failed")
