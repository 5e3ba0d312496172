"""Hostile input (issue #8): the edge's own /openapi.json turned into a fuzzer, the JWT attack list of
docs/design.md §3.3 one case at a time, and raw HTTP abuse (oversized and lying bodies, deep JSON, bad
UTF-8, header floods, long URLs, slow clients) against one real daemon. Every answer is a 4xx in the
documented shape (or the server closing a connection it will not serve), every bad identity token is
refused as `invalid_identity` and audited once, memory stays bounded and the daemon keeps serving."""

import base64
import collections
import hashlib
import hmac
import json
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cluster_kit import free_port, sh
from test_daemon import SITE_ORIGIN, _setup_home

pytestmark = pytest.mark.slow

ISSUER = "https://acme.example"
ANON_ACTION = "calendly.available_times"  # runs without a visitor: a downgraded token would get a 200 here
REFUSED = "The identity token was refused."
RSA_KID, EC_KID = "site-rs256", "site-es256"
# Fuzzing budget per operation and generation mode (the module's CI budget is ~3 minutes on 2 cores).
EXAMPLES = {
    "runAction": 450,
    "chat": 350,
    "getWidgetConfig": 150,
    "listActions": 150,
    "mcp": 200,
    "answerConfirmation": 60,
    "showConfirmation": 30,
}
PREFLIGHT_EXAMPLES, PLAIN_EXAMPLES = 70, 10
MIN_TOTAL_CASES = 2500
RSS_GROWTH_MB = 50
FUZZ_COUNTS: collections.Counter = collections.Counter()
FUZZ_STATUSES: collections.Counter = collections.Counter()


# -- the daemon ------------------------------------------------------------------------------------


def _rss(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def _memory(d) -> dict[str, dict[str, float]]:
    st = d.state()
    return {name: {"pid": st[name]["pid"], **_rss(st[name]["pid"])} for name in ("edge", "provider")}


@pytest.fixture(scope="module")
def d(sandbox_server, tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    sandbox_server.reset()
    tmp = tmp_path_factory.mktemp("hostile")
    # Rate limits off: the fuzzer sends thousands of requests from one IP (test_rate_limits_... turns them on).
    dm = _setup_home(
        tmp, sandbox_server, port=free_port(), daemon_args=("--ip-rate", "0", "--visitor-rate", "0")
    )
    env = dm.env
    # An anonymous action (calendly.available_times), so that a token quietly downgraded would show as a 200.
    sh(
        env,
        "connect",
        "calendly",
        "-w",
        "acme",
        "--sandbox",
        sandbox_server.url,
        "--access-token-stdin",
        input=sandbox_server.credentials()["calendly"]["access_token"] + "\n",
    )
    # Site public keys beside the HS256 secret: RS256 (key confusion with the PEM as HMAC secret) and ES256.
    dm.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dm.ec = ec.generate_private_key(ec.SECP256R1())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    dm.rsa_pem = dm.rsa.public_key().public_bytes(serialization.Encoding.PEM, spki)
    dm.ec_pem = dm.ec.public_key().public_bytes(serialization.Encoding.PEM, spki)
    dm.rsa_ssh = dm.rsa.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    for kid, alg, pem in ((RSA_KID, "RS256", dm.rsa_pem), (EC_KID, "ES256", dm.ec_pem)):
        (tmp / f"{kid}.pem").write_bytes(pem)
        sh(
            env,
            "identity",
            "add-key",
            "-w",
            "acme",
            "--public-key",
            str(tmp / f"{kid}.pem"),
            "--alg",
            alg,
            "--kid",
            kid,
        )
    sh(env, "workspace", "set-identity", "acme", "--issuer", ISSUER)
    other = json.loads(sh(env, "identity", "rotate", "-w", "other", "--json").stdout)
    dm.other_secret, dm.other_kid = other["secret"], other["kid"]
    sh(env, "knowledge", "add", "-w", "acme", str(Path(__file__).parent / "data" / "knowledge"))
    dm.audit_db = dm.home / "audit.db"
    # Warm up every path once (lazy imports, connection pools, caches), then take the memory baseline.
    assert dm.act(ANON_ACTION).status_code == 200
    assert dm.act("shopify.list_my_orders", token=_good(dm)).status_code == 200
    assert dm.act("shopify.list_my_orders", token="x.y.z").status_code == 401
    assert dm.http.post("/v1/workspaces/acme/chat", json={"message": "shipping?"}).status_code == 200
    assert "botctl_edge_requests_total" in dm.metrics()
    for path in (
        "/readyz",
        "/openapi.json",
        "/widget.js",
        "/v1/workspaces/acme/actions",
        "/v1/workspaces/acme/widget-config",
    ):
        assert dm.http.get(path).status_code == 200
    dm.baseline = _memory(dm)
    yield dm
    sh(env, "daemon", "stop", check=False)


def _records(d, rid: str) -> list[dict]:
    """The audit records carrying this request id (read-only, straight from audit.db: the CLI per case is slow)."""
    with sqlite3.connect(f"file:{d.audit_db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT body FROM records WHERE json_extract(body, '$.request_id') = ?", (rid,))
        return [json.loads(body) for (body,) in rows]


def _serving(d) -> None:
    """A normal request right after a hostile one still gets its answer, promptly."""
    started = time.monotonic()
    r = httpx.get(f"{d.url}/readyz", timeout=5)
    assert r.status_code == 200 and r.json()["ok"] is True
    r = httpx.post(f"{d.url}/v1/workspaces/acme/actions/{ANON_ACTION}", json={"params": {}}, timeout=5)
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 3


# -- identity tokens -------------------------------------------------------------------------------


def _b64(raw) -> str:
    data = (
        raw
        if isinstance(raw, bytes)
        else (raw.encode() if isinstance(raw, str) else json.dumps(raw).encode())
    )
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**over) -> dict:
    now = int(time.time())
    claims = {
        "sub": "u-ada",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "aud": "acme",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 300,
        **over,
    }
    return {k: v for k, v in claims.items() if v is not None}


def _hs(header, payload, key: bytes, digest=hashlib.sha256) -> str:
    """HMAC-signed compact JWS built by hand (no library check gets in the way of a malformed input)."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), digest).digest())}"


def _signed(private_key, header: dict, payload) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    signing_input = f"{_b64(header)}.{_b64(payload)}".encode()
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{_b64(sig)}"


def _good(d, **over) -> str:
    return _hs({"alg": "HS256", "kid": d.kid, "typ": "JWT"}, _claims(**over), d.secret.encode())


def _hd(d, **extra) -> dict:
    return {"alg": "HS256", "kid": d.kid, **extra}


def _attacker_rsa():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _rsa_jwk(key) -> dict:
    from jwt.algorithms import RSAAlgorithm

    return json.loads(RSAAlgorithm.to_jwk(key.public_key()))


class _Trap:
    """An HTTP server the verifier must never contact (jku / x5u targets)."""

    hits: list[str] = []

    def __enter__(self):
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"keys": []}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _jwt_attacks(d, trap_url: str) -> dict[str, dict]:
    """name → {"auth": [header values] | "token": str, "ws"?: str, "reasons": accepted internal refusal reasons}."""
    key = d.secret.encode()
    good = _good(d)
    h, p, s = good.split(".")
    now = int(time.time())
    claims = _claims()
    flipped = ("A" if s[0] != "A" else "B") + s[1:]
    attacker = _attacker_rsa()
    n_p256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    es_header = _b64({"alg": "ES256", "kid": EC_KID})
    a: dict[str, dict] = {}

    def add(name, token=None, *reasons, auth=None, ws="acme"):
        a[name] = {"auth": auth if auth is not None else [f"Bearer {token}"], "ws": ws, "reasons": reasons}

    # 1 alg=none in its spellings, with an empty signature and with the original one
    for alg in ("none", "None", "NONE", "nOnE"):
        add(f"alg_{alg}_empty_sig", f"{_b64({'alg': alg, 'kid': d.kid})}.{p}.", "malformed")
        add(f"alg_{alg}_kept_sig", f"{_b64({'alg': alg, 'kid': d.kid})}.{p}.{s}", "alg_not_allowed")
    add("alg_missing", _hs({"kid": d.kid}, claims, key), "alg_not_allowed")
    add("alg_hs512", _hs(_hd(d, alg="HS512"), claims, key, hashlib.sha512), "alg_not_allowed")
    add("alg_lowercase", _hs(_hd(d, alg="hs256"), claims, key), "alg_not_allowed")
    add("alg_not_string", _hs(_hd(d, alg=["HS256"]), claims, key), "alg_not_allowed")
    # 2 key confusion: the site's public key (PEM / OpenSSH) used as an HMAC secret; RS256 header on HMAC
    add("hs256_rsa_pem_as_secret_rsa_kid", _hs(_hd(d, kid=RSA_KID), claims, d.rsa_pem), "alg_mismatch")
    add("hs256_rsa_pem_as_secret_hs_kid", _hs(_hd(d), claims, d.rsa_pem), "bad_signature")
    add("hs256_rsa_pem_as_secret_no_kid", _hs({"alg": "HS256"}, claims, d.rsa_pem), "kid_required")
    add("hs256_ssh_key_as_secret", _hs(_hd(d, kid=RSA_KID), claims, d.rsa_ssh), "alg_mismatch")
    add("hs256_ec_pem_as_secret", _hs(_hd(d, kid=EC_KID), claims, d.ec_pem), "alg_mismatch")
    add("rs256_header_hmac_signature", f"{_b64({'alg': 'RS256', 'kid': d.kid})}.{p}.{s}", "alg_mismatch")
    add(
        "rs256_attacker_key_site_kid",
        _signed(attacker, {"alg": "RS256", "kid": RSA_KID}, claims),
        "bad_signature",
    )
    # 3 signature stripped / extra segments
    add("sig_stripped", f"{h}.{p}.", "malformed")
    add("sig_and_dot_stripped", f"{h}.{p}", "malformed")
    add("sig_trailing_dot", f"{h}.{p}.{s}.", "malformed")
    add("sig_extra_segment", f"{h}.{p}.{s}.extra", "malformed")
    # 4 blank / weak secrets
    for name, weak in (("blank", b""), ("secret", b"secret"), ("password", b"password"), ("one", b"1")):
        add(f"weak_secret_{name}", _hs(_hd(d), claims, weak), "bad_signature", "invalid_token")
    # 5 tampering with the original signature
    add("tampered_payload_sub", f"{h}.{_b64({**claims, 'sub': 'admin'})}.{s}", "bad_signature")
    add(
        "tampered_payload_email", f"{h}.{_b64({**claims, 'email': 'grace@example.com'})}.{s}", "bad_signature"
    )
    add("tampered_header", f"{_b64(_hd(d, typ='at+jwt'))}.{p}.{s}", "bad_signature")
    add("tampered_signature", f"{h}.{p}.{flipped}", "bad_signature")
    # 6 kid injection (each signed the way the playbook expects a vulnerable lookup to verify it)
    add("kid_traversal_dev_null", _hs(_hd(d, kid="../../../../../../dev/null"), claims, b""), "unknown_kid")
    add("kid_dev_null", _hs(_hd(d, kid="/dev/null"), claims, b""), "unknown_kid")
    add("kid_invalid_path", _hs(_hd(d, kid="/invalid_path"), claims, b""), "unknown_kid")
    add("kid_sql_injection", _hs(_hd(d, kid="x' UNION SELECT '1';--"), claims, b"1"), "unknown_kid")
    add("kid_sql_tautology", _hs(_hd(d, kid=f"{d.kid}' OR '1'='1"), claims, key), "unknown_kid")
    add("kid_command_injection", _hs(_hd(d, kid="|sleep 10"), claims, key), "unknown_kid")
    add("kid_blank", _hs(_hd(d, kid=""), claims, key), "unknown_kid")
    add("kid_null", _hs(_hd(d, kid=None), claims, key), "kid_required")
    add("kid_int", _hs(_hd(d, kid=123), claims, key), "kid_not_string")
    add("kid_list", _hs(_hd(d, kid=[d.kid]), claims, key), "kid_not_string")
    add("kid_object", _hs(_hd(d, kid={"$ne": None}), claims, key), "kid_not_string")
    add("kid_other_workspace", _hs(_hd(d, kid=d.other_kid), claims, d.other_secret.encode()), "unknown_kid")
    add("kid_unicode", _hs(_hd(d, kid=d.kid + "\u202e"), claims, key), "unknown_kid")
    # 7, 8 jku / x5u / embedded jwk / x5c: never fetched, never trusted
    add("jku_spoof", _hs(_hd(d, jku=trap_url), claims, key), "forbidden_header:jku")
    add("x5u_spoof", _hs(_hd(d, x5u=trap_url), claims, key), "forbidden_header:x5u")
    add(
        "jwk_embedded_rsa",
        _signed(attacker, {"alg": "RS256", "jwk": _rsa_jwk(attacker)}, claims),
        "forbidden_header:jwk",
    )
    add(
        "jwk_embedded_rsa_site_kid",
        _signed(attacker, {"alg": "RS256", "kid": RSA_KID, "jwk": _rsa_jwk(attacker)}, claims),
        "forbidden_header:jwk",
    )
    add(
        "jwk_embedded_oct",
        _hs(_hd(d, jwk={"kty": "oct", "k": _b64(b"k" * 32)}), claims, b"k" * 32),
        "forbidden_header:jwk",
    )
    add(
        "x5c_embedded",
        _signed(attacker, {"alg": "RS256", "kid": RSA_KID, "x5c": [_b64(b"attacker cert")]}, claims),
        "forbidden_header:x5c",
    )
    # 9 crit
    for name, crit in (("exp", ["exp"]), ("empty", []), ("string_b64", "b64"), ("unknown", ["foo"])):
        add(f"crit_{name}", _hs(_hd(d, crit=crit), claims, key), "forbidden_header:crit")
    add("crit_b64_false", _hs(_hd(d, crit=["b64"], b64=False), claims, key), "forbidden_header:crit")
    # 10-13 time claims
    add("expired_past_leeway", _good(d, iat=now - 300, exp=now - 61), "expired")
    add("expired_long_ago", _good(d, iat=now - 7200, exp=now - 3600), "expired")
    add("nbf_future", _good(d, nbf=now + 120), "not_yet_valid")
    add("iat_future", _good(d, iat=now + 3600, exp=now + 3900), "not_yet_valid", "issued_in_future")
    add("lifetime_ten_years", _good(d, exp=now + 10 * 365 * 86400), "lifetime_too_long")
    add("lifetime_just_over_max", _good(d, iat=now, exp=now + 3601), "lifetime_too_long")
    for claim in ("exp", "iat", "sub", "aud", "iss"):
        add(
            f"missing_{claim}",
            _hs(_hd(d), {k: v for k, v in claims.items() if k != claim}, key),
            f"missing_claim:{claim}",
        )
    # 14, 15 audience / issuer / workspace
    add("aud_other_workspace", _good(d, aud="other"), "wrong_audience")
    add("aud_list_with_ours", _good(d, aud=["acme", "other"]), "wrong_audience")
    add("aud_list_only_ours", _good(d, aud=["acme"]), "wrong_audience")
    add("aud_empty", _good(d, aud=""), "wrong_audience", "missing_claim:aud")
    add("aud_case", _good(d, aud="ACME"), "wrong_audience")
    add("iss_suffix", _good(d, iss=ISSUER + ".evil"), "wrong_issuer")
    add("iss_trailing_slash", _good(d, iss=ISSUER + "/"), "wrong_issuer")
    add("iss_list", _good(d, iss=[ISSUER]), "wrong_issuer", "invalid_token")
    add("iss_int", _good(d, iss=1), "wrong_issuer", "invalid_token")
    add("token_on_other_workspace", good, "unknown_kid", ws="other")
    add(
        "other_workspace_token_aud_acme",
        _hs({"alg": "HS256", "kid": d.other_kid}, claims, d.other_secret.encode()),
        "unknown_kid",
    )
    add(
        "other_workspace_token_own_aud",
        _hs({"alg": "HS256", "kid": d.other_kid}, _claims(aud="other"), d.other_secret.encode()),
        "unknown_kid",
    )
    # 16 type confusion
    add("sub_int", _good(d, sub=123), "invalid_token", "bad_sub")
    add("sub_empty", _good(d, sub=""), "bad_sub", "invalid_token")
    add("sub_blank", _good(d, sub="   "), "bad_sub")
    add("sub_too_long", _good(d, sub="u" * 300), "bad_sub")
    add("exp_string", _good(d, exp=str(now + 300)), "invalid_token", "bad_time_claim")
    add("exp_huge_float", _good(d, exp=1e308), "bad_time_claim", "lifetime_too_long")
    add("exp_bool", _good(d, exp=True), "expired", "bad_time_claim", "invalid_token")
    add("iat_bool", _good(d, iat=True), "bad_time_claim", "invalid_token")
    add("email_not_string", _good(d, email=["ada@example.com"]), "bad_email")
    add("email_two_addresses", _good(d, email="ada@example.com grace@example.com"), "bad_email")
    add("name_not_string", _good(d, name={"first": "Ada"}), "bad_name")
    # 18 oversize and deep nesting (the header is parsed by hand before PyJWT: both must be refused cleanly)
    add("oversized_header", _hs(_hd(d, pad="x" * 9000), claims, key), "token_too_large")
    add("oversized_payload", _good(d, pad="x" * 9000), "token_too_large")
    add("very_long_garbage", "a" * 20_000, "token_too_large")
    add("deep_json_header", f"{_b64('[' * 1500 + ']' * 1500)}.{p}.{s}", "malformed_header")
    add(
        "deep_json_payload",
        _hs(_hd(d), ('{"sub":' + "[" * 1500 + "]" * 1500 + "}").encode(), key),
        "invalid_token",
    )
    # 19 encodings: padding, the standard alphabet, whitespace, URL syntax, non-ASCII
    add("b64_padded_header", f"{h}==.{p}.{s}", "malformed")
    add(
        "b64_padded_payload",
        f"{h}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()}=.{s}",
        "malformed",
    )
    add("b64_standard_alphabet", f"{h}.{p}.{s}+/", "malformed")
    add("whitespace_inside", f"{h}. {p}.{s}", "malformed")
    add("tab_inside", f"{h}.{p}.{s[:10]}\t{s[10:]}", "malformed")
    add("query_chars", f"{h}.{p}.{s}?x=1", "malformed")
    add("fragment_chars", f"{h}#.{p}.{s}", "malformed")
    add(
        "braces_json_serialization",
        json.dumps({"payload": p, "signatures": [{"protected": h, "signature": s}]}),
        "malformed",
    )
    add(
        "fullwidth_dots",
        f"{h}\uff0e{p}\uff0e{s}",
        "malformed",
        auth=[f"Bearer {h}\uff0e{p}\uff0e{s}".encode()],
    )
    add("utf8_in_token", None, "malformed", auth=[f"Bearer {h}.{p}é.{s}".encode()])
    # 20 duplicate JOSE header parameters / claims: the last one wins (RFC 7515 §4), the same in every parser
    dup_alg = ('{"alg":"HS256","kid":"%s","alg":"none"}' % d.kid).encode()
    add("duplicate_alg_last_none", _hs(dup_alg, claims, key), "alg_not_allowed")
    dup_kid = ('{"alg":"HS256","kid":"%s","kid":"nope"}' % d.kid).encode()
    add("duplicate_kid_last_unknown", _hs(dup_kid, claims, key), "unknown_kid")
    dup_aud = json.dumps(claims)[:-1] + ', "aud": "other"}'
    add("duplicate_aud_claim", _hs(_hd(d), dup_aud.encode(), key), "wrong_audience")
    # non-JSON / wrong-type headers and payloads; nested JWT; JWE shape
    add("header_not_json", f"{_b64('not json')}.{p}.{s}", "malformed_header")
    add("header_json_array", f"{_b64([1, 2])}.{p}.{s}", "malformed_header")
    add("header_json_string", f"{_b64(json.dumps('HS256'))}.{p}.{s}", "malformed_header")
    bad_utf8 = _b64(b'{"alg":"HS256\xff"}')
    add("header_bad_utf8", f"{bad_utf8}.{p}.{s}", "malformed_header")
    add("header_empty_object", f"{_b64({})}.{p}.{s}", "alg_not_allowed")
    add("payload_not_json", _hs(_hd(d), b"not json", key), "invalid_token")
    add("payload_json_array", _hs(_hd(d), [claims], key), "invalid_token")
    add("nested_jwt", _hs(_hd(d, cty="JWT"), good.encode(), key), "invalid_token")
    add(
        "jwe_five_parts",
        f"{_b64({'alg': 'dir', 'enc': 'A256GCM', 'kid': d.kid})}..{_b64(b'iv')}.{p}.{_b64(b't')}",
        "malformed",
    )
    add("jwe_five_parts_filled", f"{h}.{_b64(b'k')}.{_b64(b'iv')}.{p}.{s}", "malformed")
    # 23 ECDSA "psychic signatures": r = s = 0 and r = s = n
    add("es256_zero_signature", f"{es_header}.{p}.{_b64(bytes(64))}", "bad_signature", "invalid_token")
    add(
        "es256_r_s_equal_n",
        f"{es_header}.{p}.{_b64(n_p256.to_bytes(32, 'big') * 2)}",
        "bad_signature",
        "invalid_token",
    )
    add("es256_hmac_signature", f"{es_header}.{p}.{s}", "bad_signature", "invalid_token")
    # the Authorization header itself
    add("empty_token", None, "malformed", auth=["Bearer "])
    add("empty_header", None, "malformed", auth=[""])
    add("bearer_without_token", None, "malformed", auth=["Bearer"])
    add("bearer_twice", None, "malformed", auth=[f"Bearer Bearer {good}"])
    add("lowercase_scheme_bad_token", None, "bad_signature", auth=[f"bearer {h}.{p}.{flipped}"])
    add("basic_scheme", None, "malformed", auth=["Basic dXNlcjpwYXNz"])
    add("other_scheme_good_token", None, "malformed", auth=[f"Token {good}"])
    add("no_scheme_good_token_with_space", None, "malformed", auth=[f" {good} x"])
    add("two_headers_good_good", None, "malformed", auth=[f"Bearer {good}", f"Bearer {good}"])
    add("two_headers_good_bad", None, "malformed", auth=[f"Bearer {good}", "Bearer x.y.z"])
    add("two_headers_bad_good", None, "malformed", auth=["Bearer x.y.z", f"Bearer {good}"])
    add("garbage", "not-a-token", "malformed")
    return a


JWT_ATTACK_NAMES = [
    *(f"alg_{x}_{y}" for x in ("none", "None", "NONE", "nOnE") for y in ("empty_sig", "kept_sig")),
    "alg_missing",
    "alg_hs512",
    "alg_lowercase",
    "alg_not_string",
    "hs256_rsa_pem_as_secret_rsa_kid",
    "hs256_rsa_pem_as_secret_hs_kid",
    "hs256_rsa_pem_as_secret_no_kid",
    "hs256_ssh_key_as_secret",
    "hs256_ec_pem_as_secret",
    "rs256_header_hmac_signature",
    "rs256_attacker_key_site_kid",
    "sig_stripped",
    "sig_and_dot_stripped",
    "sig_trailing_dot",
    "sig_extra_segment",
    "weak_secret_blank",
    "weak_secret_secret",
    "weak_secret_password",
    "weak_secret_one",
    "tampered_payload_sub",
    "tampered_payload_email",
    "tampered_header",
    "tampered_signature",
    "kid_traversal_dev_null",
    "kid_dev_null",
    "kid_invalid_path",
    "kid_sql_injection",
    "kid_sql_tautology",
    "kid_command_injection",
    "kid_blank",
    "kid_null",
    "kid_int",
    "kid_list",
    "kid_object",
    "kid_other_workspace",
    "kid_unicode",
    "jku_spoof",
    "x5u_spoof",
    "jwk_embedded_rsa",
    "jwk_embedded_rsa_site_kid",
    "jwk_embedded_oct",
    "x5c_embedded",
    "crit_exp",
    "crit_empty",
    "crit_string_b64",
    "crit_unknown",
    "crit_b64_false",
    "expired_past_leeway",
    "expired_long_ago",
    "nbf_future",
    "iat_future",
    "lifetime_ten_years",
    "lifetime_just_over_max",
    "missing_exp",
    "missing_iat",
    "missing_sub",
    "missing_aud",
    "missing_iss",
    "aud_other_workspace",
    "aud_list_with_ours",
    "aud_list_only_ours",
    "aud_empty",
    "aud_case",
    "iss_suffix",
    "iss_trailing_slash",
    "iss_list",
    "iss_int",
    "token_on_other_workspace",
    "other_workspace_token_aud_acme",
    "other_workspace_token_own_aud",
    "sub_int",
    "sub_empty",
    "sub_blank",
    "sub_too_long",
    "exp_string",
    "exp_huge_float",
    "exp_bool",
    "iat_bool",
    "email_not_string",
    "email_two_addresses",
    "name_not_string",
    "oversized_header",
    "oversized_payload",
    "very_long_garbage",
    "deep_json_header",
    "deep_json_payload",
    "b64_padded_header",
    "b64_padded_payload",
    "b64_standard_alphabet",
    "whitespace_inside",
    "tab_inside",
    "query_chars",
    "fragment_chars",
    "braces_json_serialization",
    "fullwidth_dots",
    "utf8_in_token",
    "duplicate_alg_last_none",
    "duplicate_kid_last_unknown",
    "duplicate_aud_claim",
    "header_not_json",
    "header_json_array",
    "header_json_string",
    "header_bad_utf8",
    "header_empty_object",
    "payload_not_json",
    "payload_json_array",
    "nested_jwt",
    "jwe_five_parts",
    "jwe_five_parts_filled",
    "es256_zero_signature",
    "es256_r_s_equal_n",
    "es256_hmac_signature",
    "empty_token",
    "empty_header",
    "bearer_without_token",
    "bearer_twice",
    "lowercase_scheme_bad_token",
    "basic_scheme",
    "other_scheme_good_token",
    "no_scheme_good_token_with_space",
    "two_headers_good_good",
    "two_headers_good_bad",
    "two_headers_bad_good",
    "garbage",
]


@pytest.fixture(scope="module")
def trap():
    with _Trap() as t:
        yield t


@pytest.fixture(scope="module")
def attacks(d, trap):
    built = _jwt_attacks(d, trap.url)
    assert sorted(built) == sorted(JWT_ATTACK_NAMES)  # the parametrised list and the builders agree
    return built


def _send_raw(
    d, method: str, path: str, headers: list[tuple[str, bytes | str]], body: bytes = b"", timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """One request over a plain socket (NUL bytes, tabs, non-ASCII and repeated fields sent as given)."""
    head = [f"{method} {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{d.port}".encode(), b"Connection: close"]
    for name, value in [*headers, ("Content-Length", str(len(body)))]:
        head.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    with socket.create_connection(("127.0.0.1", d.port), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        responses = _read_responses(sock)
    assert len(responses) == 1, responses
    return responses[0]


@pytest.mark.parametrize("name", JWT_ATTACK_NAMES)
def test_jwt_attack_refused_and_audited(d, attacks, trap, name):
    case = attacks[name]
    headers = [("Content-Type", "application/json"), *(("Authorization", v) for v in case["auth"])]
    status, resp_headers, body = _send_raw(
        d, "POST", f"/v1/workspaces/{case['ws']}/actions/{ANON_ACTION}", headers, b'{"params": {}}'
    )
    answer = json.loads(body)
    rid = resp_headers["x-request-id"]
    # Refused (never run as an anonymous visitor, which this action would allow), in the documented shape.
    assert status == 401, (name, status, answer)
    assert answer == {"error": {"code": "invalid_identity", "message": REFUSED}, "request_id": rid}
    records = _records(d, rid)
    assert len(records) == 1, (name, records)
    rec = records[0]
    assert (rec["event"], rec["outcome"], rec["reason"]) == ("action.run", "denied", "invalid_identity"), rec
    assert rec["workspace"] == case["ws"] and rec["action"] == ANON_ACTION
    assert rec["actor"] == {"type": "visitor"}  # nothing taken from the refused token's claims
    assert rec["detail"]["identity_reason"] in case["reasons"], (name, rec["detail"])
    dump = json.dumps(rec)
    for value in case["auth"]:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        sig = text.rsplit(".", 1)[-1]
        assert len(sig) < 12 or sig not in dump  # the token is never recorded
    assert not trap.hits  # jku / x5u never fetched


@pytest.mark.parametrize("auth", ["Bearer {t}", "bearer {t}", "BEARER {t}", "Bearer   {t}"])
def test_good_token_accepted(d, auth):
    """The control for the attack list: the same request with the untouched token runs for the visitor."""
    tok = _good(d)
    r = d.http.post(
        "/v1/workspaces/acme/actions/shopify.list_my_orders",
        json={"params": {}},
        headers={"Authorization": auth.format(t=tok)},
    )
    assert r.status_code == 200, r.text
    rec = _records(d, r.headers["x-request-id"])
    assert len(rec) == 1 and rec[0]["actor"]["email"] == "ada@example.com" and rec[0]["outcome"] == "ok"


@pytest.mark.parametrize("name", JWT_ATTACK_NAMES)
def test_jwt_attack_refused_on_mcp(d, attacks, trap, name):
    """The same attack list on the MCP endpoint (issue #18): a tool call that an anonymous caller could make is
    refused (HTTP 401, JSON-RPC error with the stable code), audited once, never run anonymously."""
    case = attacks[name]
    headers = [("Content-Type", "application/json"), *(("Authorization", v) for v in case["auth"])]
    message = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": ANON_ACTION.replace(".", "__"), "arguments": {}},
    }
    status, resp_headers, body = _send_raw(
        d, "POST", f"/v1/workspaces/{case['ws']}/mcp", headers, json.dumps(message).encode()
    )
    answer = json.loads(body)
    assert status == 401, (name, status, answer)
    assert answer["id"] == 7 and answer["error"]["data"] == {"code": "invalid_identity"}, answer
    assert "resource_metadata=" in resp_headers["www-authenticate"]
    records = _records(d, resp_headers["x-request-id"])
    assert len(records) == 1, (name, records)
    rec = records[0]
    assert (rec["event"], rec["outcome"], rec["reason"]) == ("action.run", "denied", "invalid_identity"), rec
    assert rec["actor"] == {"type": "visitor", "channel": "mcp"}  # nothing taken from the refused token
    assert rec["detail"]["identity_reason"] in case["reasons"], (name, rec["detail"])
    # tools/list too: refused, not listed as for an anonymous caller.
    message = {"jsonrpc": "2.0", "id": 8, "method": "tools/list"}
    status, resp_headers, body = _send_raw(
        d, "POST", f"/v1/workspaces/{case['ws']}/mcp", headers, json.dumps(message).encode()
    )
    assert status == 401 and "result" not in json.loads(body), (name, body[:200])
    assert not trap.hits


def test_bad_token_on_chat_refused_and_audited(d, attacks):
    r = d.http.post(
        "/v1/workspaces/acme/chat",
        json={"message": "How long does shipping take?"},
        headers={"Authorization": attacks["alg_none_kept_sig"]["auth"][0]},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_identity"
    rec = _records(d, r.headers["x-request-id"])
    assert len(rec) == 1 and (rec[0]["event"], rec[0]["reason"]) == ("chat.refused", "invalid_identity")


# -- schemathesis: the OpenAPI document as a fuzzer -------------------------------------------------


def _operations() -> list[tuple[str, str]]:
    from botctld.openapi import spec

    out = []
    for ops in spec()["paths"].values():
        for op in ops.values():
            has_input = bool(op.get("parameters") or op.get("requestBody"))
            out += [
                (op["operationId"], mode)
                for mode in (("positive", "negative") if has_input else ("positive",))
            ]
    return out


def _path_params(operation_id: str) -> set[str]:
    from botctld.openapi import spec

    ops = [
        op for path in spec()["paths"].values() for op in path.values() if op["operationId"] == operation_id
    ]
    return {p["name"] for p in ops[0].get("parameters", []) if p["in"] == "path"}


def _budget(operation_id: str) -> int:
    if operation_id in EXAMPLES:
        return EXAMPLES[operation_id]
    return PREFLIGHT_EXAMPLES if operation_id.startswith("preflight") else PLAIN_EXAMPLES


@pytest.fixture(scope="module")
def schema(d):
    import schemathesis

    return schemathesis.openapi.from_url(f"{d.url}/openapi.json", timeout=10)  # loaded from the live edge


@pytest.mark.parametrize("operation_id, mode", _operations())
def test_schemathesis(d, schema, operation_id, mode):
    """Generated requests (positive: valid per the schema; negative: violating it), with real and bad identity
    tokens, allowed and foreign origins, real workspaces and actions mixed in: no 5xx, and every answer's status,
    content type, headers and body as the document says."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    op = schema.find_operation_by_id(operation_id)
    params = _path_params(operation_id)
    actions = [a["name"] for a in d.http.get("/v1/workspaces/acme/actions").json()["actions"]]
    good = _good(d)
    h, p, s = good.split(".")
    now = int(time.time())
    other = _hs({"alg": "HS256", "kid": d.other_kid}, _claims(aud="other"), d.other_secret.encode())
    # Hypothesis leans towards the first element of sampled_from: the interesting values come first, None ("as
    # generated") last.
    # The bot's token (botctl_use "mcp") is the one the MCP endpoint takes; everywhere else it is refused.
    tokens = [
        f"Bearer {good}",
        f"Bearer {_good(d, botctl_use='mcp')}",
        f"Bearer {_good(d, sub='u-grace', email='grace@example.com')}",
        f"bearer {good}",
        None,
        f"Bearer {_good(d, iat=now - 900, exp=now - 300)}",
        f"Bearer {h}.{p}.{s[::-1]}",
        "Bearer x.y.z",
        "Bearer",
        f"Bearer {other}",
    ]
    positive = mode == "positive"
    anon_tool = ANON_ACTION.replace(".", "__")
    bodies = {
        "runAction": [{"params": {}}, None],
        "chat": [{"message": "How long does shipping take?"}, None, {"message": "Can I pay with goats?"}],
        # JSON-RPC bodies: the real methods first, then what the generator makes of the schema.
        "mcp": [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": anon_tool, "arguments": {}},
            },
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            None,
            {
                "jsonrpc": "2.0",
                "id": "x",
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "fuzz", "version": "0"},
                },
            },
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "shopify__list_my_orders", "arguments": {"email": 1}},
            },
            {
                "jsonrpc": "2.0",
                "id": 4,
                "method": "tools/call",
                "params": {
                    "name": "zendesk__create_ticket",
                    "arguments": {"subject": "s", "description": "d"},
                },
            },
            {"jsonrpc": "2.0", "id": 5, "method": "ping", "params": []},
        ],
        "answerConfirmation": [{"decision": "confirm"}, None, {"decision": "cancel"}],
    }
    failures: dict[tuple, str] = {}
    statuses: collections.Counter = collections.Counter()

    @settings(
        max_examples=_budget(operation_id),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=op.as_strategy(generation_mode=GenerationMode.POSITIVE if positive else GenerationMode.NEGATIVE),
        ws=st.sampled_from(["acme", None, "acme", "freebie", "other"]),
        action=st.sampled_from([ANON_ACTION, *actions, None]),
        token=st.sampled_from(tokens),
        origin=st.sampled_from([None, SITE_ORIGIN, None, "https://evil.example"]),
        body=st.sampled_from(bodies.get(operation_id, [None])),
    )
    def run(case, ws, action, token, origin, body):
        if ws and "ws" in params:
            case.path_parameters = {**(case.path_parameters or {}), "ws": ws}
        if action and "action" in params:
            case.path_parameters = {**(case.path_parameters or {}), "action": action}
        extra = {k: v for k, v in (("Authorization", token), ("Origin", origin)) if v is not None}
        if extra:
            case.headers = {**(case.headers or {}), **extra}
        if positive and body is not None:
            case.body = body
        response = case.call(timeout=30)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
        except BaseException as exc:  # collected, so that every distinct failure is reported
            title = str(exc).strip().splitlines()[0]
            failures.setdefault(
                (response.status_code, title), f"{case.as_curl_command()}\n→ {response.text[:300]}"
            )

    run()
    n = sum(statuses.values())
    FUZZ_COUNTS[f"{operation_id} {mode}"] = n
    FUZZ_STATUSES.update({f"{operation_id} {k}": v for k, v in statuses.items()})
    print(f"\nschemathesis {operation_id} {mode}: {n} cases, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in list(failures.items())[:8])
    _serving(d)


def test_schemathesis_total(d):
    total = sum(FUZZ_COUNTS.values())
    print(f"\nschemathesis: {total} cases in total over {len(FUZZ_COUNTS)} operation/mode pairs")
    assert total >= MIN_TOTAL_CASES, FUZZ_COUNTS
    # The authenticated paths were exercised: actions ran for real visitors, chat answered, tokens were refused.
    assert FUZZ_STATUSES["runAction 200"] > 0 and FUZZ_STATUSES["runAction 401"] > 0, FUZZ_STATUSES
    assert FUZZ_STATUSES["chat 200"] > 0 and FUZZ_STATUSES["chat 401"] > 0, FUZZ_STATUSES
    assert FUZZ_STATUSES["mcp 200"] > 0 and FUZZ_STATUSES["mcp 401"] > 0, FUZZ_STATUSES
    assert sh(d.env, "audit", "verify").returncode == 0


# -- raw HTTP abuse ---------------------------------------------------------------------------------


def _read_responses(sock: socket.socket, limit: int = 1000) -> list[tuple[int, dict[str, str], bytes]]:
    """Every response on the connection until the server closes it (a reset after the last one is fine)."""
    buf, out = b"", []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    while buf and len(out) < limit:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        size = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:size]))
        buf = rest[size:]
    return out


def _raw(d, data: bytes, *, chunk: int = 1 << 16, timeout: float = 10) -> tuple[list, bool]:
    """Send bytes as fast as the server takes them; (responses read back, whether the server cut us off)."""
    cut = False
    with socket.create_connection(("127.0.0.1", d.port), timeout=timeout) as sock:
        try:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i : i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            cut = True
        # No half-close (SHUT_WR) here: uvicorn closes a connection on EOF, answered or not.
        return _read_responses(sock), cut


def _error(resp, status: int, code: str) -> None:
    st, headers, body = resp
    assert st == status, (st, body[:300])
    assert headers["content-type"].startswith("application/json")
    answer = json.loads(body)
    assert answer["error"]["code"] == code and answer["request_id"] == headers["x-request-id"], answer


def _post(
    path: str, body: bytes, *headers: str, content_type: str = "application/json", length: bool = True
) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Connection: close", *headers]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


ACT = f"/v1/workspaces/acme/actions/{ANON_ACTION}"
CHAT = "/v1/workspaces/acme/chat"


def _chunked(body: bytes, size: int = 4096) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


BODY_CASES = {
    # size: over 64 KiB, declared or not, honest or lying
    "oversized_declared": (
        _post(ACT, b'{"params": {"x": "' + b"a" * 70_000 + b'"}}'),
        413,
        "payload_too_large",
    ),
    "oversized_chunked": (
        _post(ACT, b"", "Transfer-Encoding: chunked", length=False)
        + _chunked(b'{"params": {"x": "' + b"a" * 200_000 + b'"}}'),
        413,
        "payload_too_large",
    ),
    "declared_huge_body_absent": (
        _post(ACT, b"", length=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 999999999\r\n\r\n"),
        413,
        "payload_too_large",
    ),
    "expect_continue_huge": (
        _post(ACT, b"", "Expect: 100-continue", length=False).replace(
            b"\r\n\r\n", b"\r\nContent-Length: 10000000\r\n\r\n"
        ),
        413,
        "payload_too_large",
    ),
    "content_length_too_short": (
        _post(ACT, b'{"params": {}}').replace(b"Content-Length: 14", b"Content-Length: 5"),
        400,
        "invalid_request",
    ),
    "content_length_not_a_number": (
        _post(ACT, b"{}").replace(b"Content-Length: 2", b"Content-Length: 2x"),
        400,
        "invalid_request",
    ),
    "content_length_negative": (
        _post(ACT, b"{}").replace(b"Content-Length: 2", b"Content-Length: -2"),
        400,
        "invalid_request",
    ),
    "content_length_twice": (_post(ACT, b"{}", "Content-Length: 20"), 400, "invalid_request"),
    "content_length_and_chunked": (
        _post(ACT, b"0\r\n\r\n", "Transfer-Encoding: chunked"),
        400,
        "invalid_request",
    ),
    "chunk_size_garbage": (
        _post(ACT, b"", "Transfer-Encoding: chunked", length=False) + b"zz\r\n{}\r\n0\r\n\r\n",
        400,
        "invalid_request",
    ),
    # JSON that is not, or that the provider could choke on
    "deep_array_100k": (_post(ACT, b"[" * 100_000 + b"]" * 100_000), 413, "payload_too_large"),
    "deep_array_30k": (_post(ACT, b"[" * 30_000 + b"]" * 30_000), 400, "invalid_request"),
    "deep_params_900": (
        _post(ACT, b'{"params": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}"),
        400,
        "invalid_request",
    ),
    "deep_params_33": (
        _post(ACT, b'{"params": {"a": ' + b"[" * 32 + b"]" * 32 + b"}}"),
        400,
        "invalid_request",
    ),
    "deep_objects_5000": (
        _post(ACT, b'{"params":' + b'{"a":' * 5000 + b"1" + b"}" * 5001),
        400,
        "invalid_request",
    ),
    "invalid_utf8": (_post(ACT, b'{"params": {"x": "\xff\xfe\xc3"}}'), 400, "invalid_request"),
    "overlong_utf8": (_post(ACT, b'{"params": {"x": "\xc0\xaf"}}'), 400, "invalid_request"),
    "lone_surrogate_escape": (_post(ACT, b'{"params": {"x": "\\ud800"}}'), 400, "invalid_request"),
    "lone_surrogate_chat": (_post(CHAT, b'{"message": "hi \\udfff"}'), 400, "invalid_request"),
    "nan": (_post(ACT, b'{"params": {"x": NaN}}'), 400, "invalid_request"),
    "infinity": (_post(ACT, b'{"params": {"x": -Infinity}}'), 400, "invalid_request"),
    "number_overflows_float": (_post(ACT, b'{"params": {"x": 1e999}}'), 400, "invalid_request"),
    "integer_5000_digits": (_post(ACT, b'{"params": {"x": ' + b"9" * 5000 + b"}}"), 400, "invalid_request"),
    "huge_string": (_post(ACT, b'{"params": {"x": "' + b"\\u0041" * 10_000 + b'"}}'), 422, "invalid_params"),
    "many_keys": (
        _post(ACT, b'{"params": {' + b",".join(b'"k%d": %d' % (i, i) for i in range(4000)) + b"}}"),
        422,
        "invalid_params",
    ),
    "duplicate_keys_last_wins": (_post(ACT, b'{"params": {"x": 1}, "params": []}'), 422, "invalid_params"),
    "json_scalar": (_post(ACT, b'"params"'), 400, "invalid_request"),
    "trailing_garbage": (_post(ACT, b'{"params": {}} {}'), 400, "invalid_request"),
    "bom_prefixed": (_post(ACT, b'\xef\xbb\xbf{"params": {"x": 1}}'), 422, "invalid_params"),
    # content types
    "text_plain": (_post(ACT, b'{"params": {}}', content_type="text/plain"), 415, "unsupported_media_type"),
    "form": (
        _post(ACT, b"params=1", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    ),
    "multipart": (
        _post(ACT, b"--b\r\n\r\n{}\r\n--b--", content_type="multipart/form-data; boundary=b"),
        415,
        "unsupported_media_type",
    ),
    "json_lookalike": (
        _post(ACT, b'{"params": {}}', content_type="application/jsonx"),
        415,
        "unsupported_media_type",
    ),
    "no_content_type": (_post(ACT, b'{"params": {}}', content_type=""), 415, "unsupported_media_type"),
    "chat_message_too_long": (
        _post(CHAT, json.dumps({"message": "a" * 2001}).encode()),
        400,
        "invalid_request",
    ),
    # the request line and the head
    "not_http": (b"GARBAGE\r\n\r\n", 400, "invalid_request"),
    "nul_in_path": (b"GET /healthz\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request"),
    "nul_in_authorization": (
        _post(ACT, b'{"params": {}}', "Authorization: Bearer a.b\x00.c"),
        400,
        "invalid_request",
    ),
    "bad_header_name": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "invalid_request"),
    "http_2_preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "invalid_request"),
    "url_too_long": (b"GET /healthz?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    "path_too_long": (b"GET /" + b"a/" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    "header_count_101": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: 1\r\n" % i for i in range(100)) + b"\r\n",
        431,
        "headers_too_large",
    ),
    "header_count_5000": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-F%d: 1\r\n" % i for i in range(5000))
        + b"\r\n",
        431,
        "headers_too_large",
    ),
    "one_40k_header": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",
        431,
        "headers_too_large",
    ),
    "cookie_flood": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"Cookie: c%d=%s\r\n" % (i, b"v" * 900) for i in range(60))
        + b"\r\n",
        431,
        "headers_too_large",
    ),
}


@pytest.mark.parametrize("name", list(BODY_CASES))
def test_raw_hostile_request(d, name):
    data, status, code = BODY_CASES[name]
    responses, _cut = _raw(d, data)
    assert responses, f"{name}: no answer"
    _error(responses[0], status, code)
    assert all(400 <= r[0] < 500 for r in responses), [r[0] for r in responses]
    _serving(d)


@pytest.mark.parametrize("megabytes", [1, 16])
def test_endless_header_is_cut_off(d, megabytes):
    """A header that never ends: the edge answers 431 (or resets) after its head cap, not after N megabytes."""
    before = _memory(d)["edge"]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: "
    started = time.monotonic()
    responses, cut = _raw(d, head + b"a" * (megabytes << 20))
    assert cut or (responses and responses[0][0] == 431), (cut, responses[:1])
    if responses:
        _error(responses[0], 431, "headers_too_large")
    after = _memory(d)["edge"]
    print(
        f"\nendless header {megabytes} MiB: cut={cut}, {time.monotonic() - started:.2f}s, "
        f"edge RSS {before['VmRSS']:.1f} → {after['VmRSS']:.1f} MiB, peak {after['VmHWM']:.1f} MiB"
    )
    assert after["VmHWM"] - d.baseline["edge"]["VmHWM"] < RSS_GROWTH_MB
    _serving(d)


def test_header_floods_in_parallel(d):
    """Fifty connections at once, each with a 1 MiB header or 2000 header fields: all refused, memory flat."""

    def one(i):
        if i % 2:
            data = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (1 << 20) + b"\r\n\r\n"
        else:
            data = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % j for j in range(2000)) + b"\r\n"
        responses, cut = _raw(d, data)
        return cut or bool(responses and responses[0][0] == 431)

    threads_out: list[bool] = []
    workers = [threading.Thread(target=lambda i=i: threads_out.append(one(i))) for i in range(50)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len(threads_out) == 50 and all(threads_out)
    _serving(d)


def test_pipelined_flood(d):
    """500 requests pipelined on one connection: each answered in order, none lost, nothing else disturbed."""
    data = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 499
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses, _ = _raw(d, data, timeout=30)
    assert len(responses) == 500 and {r[0] for r in responses} == {200}
    _serving(d)


def test_slow_clients_are_cut_off_and_others_served(d):
    """Slowloris: idle connections, heads sent a byte at a time, bodies that never finish, lying Content-Length.
    The edge closes each after its deadline (head 10 s, body 15 s) while normal requests keep their latency."""
    from botctld.protocol import BODY_TIMEOUT, HEAD_TIMEOUT

    socks: dict[str, list[socket.socket]] = {"idle": [], "slow_head": [], "slow_body": [], "short_body": []}
    head = b"POST /v1/workspaces/acme/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    for kind, n in (("idle", 60), ("slow_head", 120), ("slow_body", 60), ("short_body", 20)):
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.setblocking(False)
            if kind == "slow_body":
                s.sendall(head + b"Content-Length: 60000\r\n\r\n{")
            elif kind == "short_body":
                s.sendall(head + b'Content-Length: 100\r\n\r\n{"message": "hi"}')
            socks[kind].append(s)
    started = time.monotonic()
    slow_bytes = head + b"X-Pad: " + b"p" * 10_000
    closed_at: dict[int, float] = {}
    latencies: list[float] = []
    position = 0
    while time.monotonic() - started < BODY_TIMEOUT + 6:
        position += 1
        for kind, group in socks.items():
            for s in group:
                if s.fileno() in closed_at or s.fileno() < 0:
                    continue
                try:
                    if kind == "slow_head" and position < len(slow_bytes):
                        s.send(slow_bytes[position - 1 : position])  # one byte per round, the head never ends
                    elif kind == "slow_body":
                        s.send(b" ")
                    if s.recv(65536) == b"":
                        closed_at[s.fileno()] = time.monotonic() - started
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[s.fileno()] = time.monotonic() - started
        t0 = time.monotonic()
        r = httpx.post(f"{d.url}{CHAT}", json={"message": "How long does shipping take?"}, timeout=5)
        latencies.append(time.monotonic() - t0)
        assert r.status_code == 200
        if len(closed_at) == sum(len(g) for g in socks.values()):
            break
        time.sleep(0.25)
    fds = {kind: [s.fileno() for s in group] for kind, group in socks.items()}
    for group in socks.values():
        for s in group:
            s.close()
    when = {kind: sorted(closed_at.get(fd, float("inf")) for fd in fdl) for kind, fdl in fds.items()}
    print(
        "\nslow clients: closed after (min/max s) "
        + ", ".join(f"{k} {v[0]:.1f}/{v[-1]:.1f}" for k, v in when.items())
        + f"; normal requests meanwhile: {len(latencies)}, max {max(latencies) * 1000:.0f} ms"
    )
    for kind in ("idle", "slow_head"):
        assert HEAD_TIMEOUT - 1 <= when[kind][0] and when[kind][-1] <= HEAD_TIMEOUT + 4, (kind, when[kind])
    for kind in ("slow_body", "short_body"):
        assert BODY_TIMEOUT - 1 <= when[kind][0] and when[kind][-1] <= BODY_TIMEOUT + 4, (kind, when[kind])
    assert max(latencies) < 2, latencies
    _serving(d)


def test_memory_bounded_after_the_barrage(d):
    after = _memory(d)
    lines = []
    for name in ("edge", "provider"):
        b, a = d.baseline[name], after[name]
        assert a["pid"] == b["pid"], f"the {name} restarted during the hostile tests"
        lines.append(f"{name} RSS {b['VmRSS']:.1f} → {a['VmRSS']:.1f} MiB (peak {a['VmHWM']:.1f} MiB)")
        assert a["VmRSS"] - b["VmRSS"] < RSS_GROWTH_MB and a["VmHWM"] - b["VmRSS"] < 2 * RSS_GROWTH_MB, lines
    print("\n" + "; ".join(lines))
    log = (d.home / "run" / "daemon.log").read_text()
    assert "Traceback" not in log, log[log.find("Traceback") - 200 :][:3000]


# -- with the rate limits on ------------------------------------------------------------------------


def test_rate_limits_answer_429_with_the_documented_body(d, schema):
    """The daemon restarted with its default limits: the fuzzer soon gets 429s, each in the Error schema with an
    integer Retry-After, and every other answer still conforms."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    sh(d.env, "daemon", "stop")
    sh(d.env, "daemon", "start", "--port", str(d.port))  # default limits: 20/s per IP, 5/s per visitor
    deadline = time.monotonic() + 15
    while httpx.get(f"{d.url}/readyz", timeout=5).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    seen: collections.Counter = collections.Counter()
    for operation_id in ("runAction", "listActions", "chat"):
        op = schema.find_operation_by_id(operation_id)

        @settings(
            max_examples=80,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case):
            case.path_parameters = {**(case.path_parameters or {}), "ws": "acme"}
            # An allowed origin (a foreign one is refused before the limiter counts the request).
            case.headers = {
                **(case.headers or {}),
                "Authorization": f"Bearer {_good(d)}",
                "Origin": SITE_ORIGIN,
            }
            response = case.call(timeout=30)
            seen[response.status_code] += 1
            case.validate_response(
                response,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    response_headers_conformance,
                    response_schema_conformance,
                ],
            )
            if response.status_code == 429:
                body, headers = response.json(), {k.lower(): v[0] for k, v in response.headers.items()}
                assert (
                    body["error"]["code"] == "rate_limited" and body["request_id"] == headers["x-request-id"]
                )
                assert int(headers["retry-after"]) >= 1
                assert (
                    headers["access-control-allow-origin"] == SITE_ORIGIN
                )  # the widget can read the refusal

        run()
    print(f"\nwith limits on: {dict(sorted(seen.items()))}")
    assert seen[429] > 0
