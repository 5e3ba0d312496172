"""Hostile review of visitor identity and the OAuth client: each finding reproduced as an attack.

Real servers on 127.0.0.1 only: JWKS hosts that hang, trickle, redirect, bloat or drop keys; an OAuth
token endpoint and metadata document that never stop; a web page probing the login listener; the
provider itself (a real process on its Unix socket) serving one tenant while another's JWKS host hangs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from botctl import identity, oauth, workspaces
from botctl.identity import IdentityError, JwksCache, Verifier
from botctl.session import Session

# -- servers -----------------------------------------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], None]


class Site:
    """A real HTTP server on 127.0.0.1 whose answer the test changes while it runs; counts requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.hits: list[str] = []
        site = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                site.hits.append(self.path)
                site.handler(self)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def answer(status: int, body: bytes | dict, headers: dict[str, str] | None = None) -> Handler:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    def handle(h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        if length:
            h.rfile.read(length)
        h.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)

    return handle


def trickle(h: BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte every 0.2 s, for ever (until the client gives up)."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.end_headers()
    try:
        h.wfile.write(b'{"keys": [')
        while True:
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


def endless(h: BaseHTTPRequestHandler) -> None:
    """Chunk after chunk of valid-looking JSON, as fast as the client reads."""
    length = int(h.headers.get("content-length") or 0)
    if length:
        h.rfile.read(length)
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.end_headers()
    try:
        h.wfile.write(b'{"access_token": "')
        while True:
            h.wfile.write(b"A" * 65536)
    except OSError:
        pass


class BlackHole:
    """Accepts TCP connections (the kernel completes the handshake) and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sites():
    made: list[Any] = []

    def make(handler: Handler) -> Site:
        s = Site(handler)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# -- identity fixtures -------------------------------------------------------------------------------


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(priv, kid: str, **extra) -> dict:
    return {**json.loads(RSAAlgorithm.to_jwk(priv.public_key())), "kid": kid, "use": "sig", **extra}


def _claims(aud: str = "acme", **over) -> dict:
    now = int(time.time())
    c = {"sub": "u-1", "email": "ada@example.com", "aud": aud, "iat": now, "exp": now + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _rs(priv, kid: str, aud: str = "acme", headers: dict | None = None, **over) -> str:
    return jwt.encode(_claims(aud, **over), priv, algorithm="RS256", headers={"kid": kid, **(headers or {})})


@pytest.fixture
def env(home):
    app = Session(home)
    ws = workspaces.create(app, "acme", plan="pro")
    key, secret = identity.rotate(app, ws)
    yield app, ws, key, secret.reveal()
    app.close()


def _ws(app, ws):
    return workspaces.get(app.vault.conn, ws.name)


def _refused(verifier: Verifier, token: str) -> str:
    with pytest.raises(IdentityError) as exc:
        verifier.verify(token)
    return exc.value.reason


def _hs(secret: str, kid: str, headers: dict | None = None, **over) -> str:
    return jwt.encode(_claims(**over), secret, algorithm="HS256", headers={"kid": kid, **(headers or {})})


def _b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs_raw(secret: str, header: dict, claims: dict) -> str:
    """Signed by hand: PyJWT's encoder would drop an empty typ or refuse a list iss."""
    import hashlib
    import hmac

    signing = f"{_b64({'alg': 'HS256', **header})}.{_b64(claims)}"
    return f"{signing}.{_b64(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())}"


# == 2. one tenant's JWKS host must not freeze the provider for the others ================================


def _provider(home, tmp_path):
    sock = str(tmp_path / "p.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl.provider", "--home", str(home.path), "--socket", sock],
        env={**os.environ, "BOTCTL_HOME": str(home.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=sock), base_url="http://provider", timeout=30)
    deadline = time.monotonic() + 20
    while True:
        try:
            if client.get("/health").status_code == 200:
                return proc, client
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("provider did not start: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.05)


@pytest.mark.slow
def test_hanging_jwks_host_never_stalls_another_workspace(home, tmp_path):
    hole = BlackHole()
    priv = _rsa()
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        slow = workspaces.create(app, "slow", plan="pro")
        identity.add_public_key(app, slow, alg="RS256", jwks_url=hole.url, kid="site-jwks")
    proc, client = _provider(home, tmp_path)
    try:
        token = _rs(priv, "k1", aud="slow")
        body = {"params": {}, "identity_token": token, "request_id": "r-slow"}
        results: dict[str, Any] = {}

        def slow_request() -> None:
            t = time.monotonic()
            results["first"] = client.post(
                "/v1/workspaces/slow/actions/shopify.list_my_orders", json=body
            ).json()
            results["first_s"] = time.monotonic() - t

        th = threading.Thread(target=slow_request)
        th.start()
        time.sleep(0.4)  # the slow workspace's request is now waiting for its JWKS host
        latencies = []
        for _ in range(5):
            t = time.monotonic()
            r = client.get("/v1/workspaces/acme/actions")
            latencies.append(time.monotonic() - t)
            assert r.status_code == 200 and r.json()["status"] == 200
        th.join(20)
        assert max(latencies) < 0.5, latencies  # an unrelated tenant is never held up
        first = results["first"]
        assert first["status"] == 401 and first["body"]["error"]["code"] == "invalid_identity"
        # The tenant whose host hangs waits a bounded time for its first fetch (documented: 3 s) ...
        assert results["first_s"] < identity.JWKS_FIRST_WAIT_S + 1.0, results["first_s"]
        # ... and then fails fast while the fetch is retried in the background with backoff.
        for _ in range(3):
            t = time.monotonic()
            again = client.post("/v1/workspaces/slow/actions/shopify.list_my_orders", json=body).json()
            assert again["status"] == 401 and time.monotonic() - t < 0.5
    finally:
        proc.terminate()
        proc.wait(10)
        client.close()
        hole.close()


def test_jwks_waits_are_per_url_and_single_flight(env, sites):
    """Many verifications of a cold key set cause one fetch; another URL's hang does not delay it."""
    app, ws, *_ = env
    priv = _rsa()
    gate = threading.Event()
    keys = {"keys": [_jwk(priv, "k1")]}

    def slow_ok(h):
        gate.wait(5)
        answer(200, keys)(h)

    site = sites(slow_ok)
    hole = BlackHole()
    other = workspaces.create(app, "other", plan="pro")
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    identity.add_public_key(app, other, alg="RS256", jwks_url=hole.url, kid="site")
    cache = JwksCache(first_wait_s=3.0, deadline_s=2.0)
    try:

        async def run() -> list[Any]:
            v_ok = Verifier(app, _ws(app, ws), jwks=cache)
            v_hole = Verifier(app, _ws(app, other), jwks=cache)
            hole_task = asyncio.ensure_future(v_hole.averify(_rs(priv, "k1", aud="other")))
            await asyncio.sleep(0.1)
            tasks = [asyncio.ensure_future(v_ok.averify(_rs(priv, "k1"))) for _ in range(20)]
            await asyncio.sleep(0.2)
            gate.set()
            t = time.monotonic()
            done = await asyncio.gather(*tasks)
            assert time.monotonic() - t < 1.0
            with pytest.raises(IdentityError) as e:
                await hole_task
            assert e.value.reason.startswith("jwks_unavailable")
            return done

        visitors = asyncio.run(run())
        assert {v.sub for v in visitors} == {"u-1"}
        assert len(site.hits) == 1  # single flight: twenty waiters, one request
    finally:
        hole.close()


def test_failed_fetch_is_negatively_cached_with_backoff(env, sites):
    app, ws, *_ = env
    priv = _rsa()
    site = sites(answer(500, {"error": "down"}))
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    cache = JwksCache(first_wait_s=2.0)
    v = Verifier(app, _ws(app, ws), jwks=cache)
    tok = _rs(priv, "k1")
    assert _refused(v, tok).startswith("jwks_unavailable")
    t = time.monotonic()
    for _ in range(50):
        assert _refused(v, tok).startswith("jwks_unavailable")
    assert time.monotonic() - t < 0.5  # fail fast: no request waits on a host known to be failing
    assert len(site.hits) == 1  # and the host is not hammered: the retry waits for its backoff
    site.handler = answer(200, {"keys": [_jwk(priv, "k1")]})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the background retry (1 s backoff, then doubling) recovers
        try:
            assert v.verify(tok).sub == "u-1"
            break
        except IdentityError:
            time.sleep(0.1)
    else:
        raise AssertionError("never recovered")


@pytest.mark.parametrize("kind", ["trickle", "bloat", "redirect", "not_json", "private_key"])
def test_hostile_jwks_responses_are_refused(env, sites, kind):
    app, ws, *_ = env
    priv = _rsa()
    good = {"keys": [_jwk(priv, "k1")]}
    target = sites(answer(200, good))
    handler = {
        "trickle": trickle,
        # Valid keys inside 2 MiB of padding: over the 1 MiB cap, whatever it contains.
        "bloat": answer(200, {"keys": [_jwk(priv, "k1")], "pad": "x" * (2 << 20)}),
        # https -> http downgrade, or simply elsewhere: a JWKS fetch never follows a redirect.
        "redirect": answer(302, b"", {"Location": target.url + "/jwks.json"}),
        "not_json": answer(200, b"<html>hello</html>"),
        # A published private key is a configuration error, never a verification key.
        "private_key": answer(200, {"keys": [{**json.loads(RSAAlgorithm.to_jwk(priv)), "kid": "k1"}]}),
    }[kind]
    site = sites(handler)
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    cache = JwksCache(first_wait_s=3.0, deadline_s=1.5)
    v = Verifier(app, _ws(app, ws), jwks=cache)
    t = time.monotonic()
    reason = _refused(v, _rs(priv, "k1"))
    assert reason.startswith(("jwks_unavailable", "unknown_kid")), reason
    assert time.monotonic() - t < 3.5
    assert target.hits == []  # the redirect target is never contacted


# == 3. a key removed from the JWKS stops verifying within the refresh interval =========================


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_removed_jwks_key_stops_verifying_after_a_refetch(env, sites):
    """The set was fetched again and no longer holds k1: k1 is refused at once (it used to stay cached)."""
    app, ws, *_ = env
    k1, k2, k3 = _rsa(), _rsa(), _rsa()
    site = sites(answer(200, {"keys": [_jwk(k1, "k1"), _jwk(k2, "k2")]}))
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    clock = FakeClock()
    cache = JwksCache(clock=clock)
    v = Verifier(app, _ws(app, ws), jwks=cache)
    assert v.verify(_rs(k1, "k1")).sub == "u-1"
    site.handler = answer(200, {"keys": [_jwk(k2, "k2"), _jwk(k3, "k3")]})  # the site drops k1, adds k3
    clock.now += 40  # past the kid-miss floor (30 s): a new kid may trigger a refetch
    assert v.verify(_rs(k3, "k3")).sub == "u-1"
    assert len(site.hits) == 2
    assert _refused(v, _rs(k1, "k1")) == "unknown_kid"


def test_removed_jwks_key_stops_verifying_a_day_later(env, sites):
    """Nobody asks for a new kid: the set still expires after its refresh interval (default 5 min)."""
    app, ws, *_ = env
    k1, k2 = _rsa(), _rsa()
    site = sites(answer(200, {"keys": [_jwk(k1, "k1"), _jwk(k2, "k2")]}))
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    clock = FakeClock()
    cache = JwksCache(clock=clock)
    v = Verifier(app, _ws(app, ws), jwks=cache)
    assert v.verify(_rs(k1, "k1")).sub == "u-1"
    site.handler = answer(200, {"keys": [_jwk(k2, "k2")]})
    clock.now += identity.JWKS_REFRESH_S - 1
    assert v.verify(_rs(k1, "k1"))  # within the interval the set in hand is used (and refreshed behind) ...
    deadline = time.monotonic() + 5
    while cache.fetches < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    clock.now += 86400
    assert _refused(v, _rs(k1, "k1")) == "unknown_kid"  # ... past it, never: the set is fetched again
    assert v.verify(_rs(k2, "k2")).sub == "u-1"
    assert len(site.hits) >= 2


def test_jwks_cache_control_shortens_the_refresh_interval(env, sites):
    app, ws, *_ = env
    k1, k2 = _rsa(), _rsa()
    site = sites(answer(200, {"keys": [_jwk(k1, "k1")]}, {"Cache-Control": "public, max-age=45"}))
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    clock = FakeClock()
    cache = JwksCache(clock=clock)
    v = Verifier(app, _ws(app, ws), jwks=cache)
    assert v.verify(_rs(k1, "k1"))
    site.handler = answer(200, {"keys": [_jwk(k2, "k2")]})
    clock.now += 46
    assert _refused(v, _rs(k1, "k1")) == "unknown_kid"


def test_unreachable_jwks_expires_the_set(env, sites):
    """A host that stops answering cannot keep a removed key alive: past the interval, nothing verifies."""
    app, ws, *_ = env
    k1 = _rsa()
    site = sites(answer(200, {"keys": [_jwk(k1, "k1")]}))
    identity.add_public_key(app, ws, alg="RS256", jwks_url=site.url + "/jwks.json", kid="site")
    clock = FakeClock()
    cache = JwksCache(clock=clock, first_wait_s=2.0)
    v = Verifier(app, _ws(app, ws), jwks=cache)
    assert v.verify(_rs(k1, "k1"))
    site.handler = answer(503, {"error": "down"})
    clock.now += identity.JWKS_REFRESH_S + 1
    assert _refused(v, _rs(k1, "k1")).startswith("jwks_unavailable")


def test_pyjwt_floor():
    from importlib.metadata import version

    assert tuple(int(p) for p in version("pyjwt").split(".")[:2]) >= (2, 14)


# == 9. emails: exactly what the site verified, nothing broader ==========================================


@pytest.mark.parametrize(
    "email, reason",
    [
        ("\u212aate@example.com", "email_not_ascii"),  # KELVIN SIGN: lower() makes it "kate@example.com"
        ("linu\u017f@example.com", "email_not_ascii"),  # LONG S: casefold() makes it "linus@example.com"
        ("gro\u00df@example.com", "email_not_ascii"),  # casefold(): "gross@example.com"
        ("ada@example.com\u202e", "bad_email"),  # bidi override
        ("ada\u200b@example.com", "bad_email"),  # zero-width space
        ("ada@exa\x00mple.com", "bad_email"),
        ("ada\t@example.com", "bad_email"),
        (" ada@example.com", "bad_email"),
        ("ada@@example.com", "bad_email"),
    ],
)
def test_unverifiable_emails_refused_by_default(env, email, reason):
    app, ws, key, secret = env
    v = Verifier(app, _ws(app, ws))
    assert _refused(v, _hs(secret, key.kid, email=email)) == reason


def test_ascii_email_lowercased_whole_unicode_opt_in_compared_exactly(env):
    from botctl.connectors._common import same_email

    app, ws, key, secret = env
    assert (
        Verifier(app, _ws(app, ws)).verify(_hs(secret, key.kid, email="Ada@Example.COM")).email
        == "ada@example.com"
    )
    identity.set_settings(app, ws, unicode_email=True)
    v = Verifier(app, _ws(app, ws))
    kelvin = v.verify(_hs(secret, key.kid, email="\u212aate@EXAMPLE.com")).email
    assert kelvin == "\u212aate@example.com"  # only the domain's ASCII letters are lowered
    assert not same_email(kelvin, "kate@example.com")
    assert (
        _refused(v, _hs(secret, key.kid, email="ada@example.com\u202e")) == "bad_email"
    )  # never, even opted in


@pytest.mark.parametrize(
    "vendor_side, visitor, same",
    [
        ("linus@example.com", "linu\u017f@example.com", False),
        ("kate@example.com", "\u212aate@example.com", False),
        ("gross@example.com", "gro\u00df@example.com", False),
        ("ADA@EXAMPLE.COM", "ada@example.com", True),
        (" ada@example.com ", "ada@example.com", True),
        (
            "J\u00f6rg@Example.com",
            "J\u00f6rg@example.com",
            True,
        ),  # non-ASCII local part: exact, domain lowered
        ("j\u00f6rg@example.com", "J\u00f6rg@example.com", False),
        ("ada@example.com\u202e", "ada@example.com", False),
        ("ada@example.com", "", False),
        (None, "ada@example.com", False),
    ],
)
def test_connector_email_comparison(vendor_side, visitor, same):
    from botctl.connectors._common import same_email

    assert same_email(vendor_side, visitor) is same


def test_email_verified(env):
    app, ws, key, secret = env
    v = Verifier(app, _ws(app, ws))
    assert _refused(v, _hs(secret, key.kid, email_verified=False)) == "email_not_verified"
    assert _refused(v, _hs(secret, key.kid, email_verified="true")) == "email_not_verified"
    assert v.verify(_hs(secret, key.kid)).email == "ada@example.com"  # absent: fine unless required
    identity.set_settings(app, ws, require_email_verified=True)
    v = Verifier(app, _ws(app, ws))
    assert _refused(v, _hs(secret, key.kid)) == "email_not_verified"
    assert v.verify(_hs(secret, key.kid, email_verified=True)).email == "ada@example.com"
    assert v.verify(_hs(secret, key.kid, email=None)).email is None  # no email, nothing to verify


# == 12. typ, jti, iss ======================================================================================


@pytest.mark.parametrize(
    "typ, ok",
    [
        ("JWT", True),
        ("jwt", True),
        ("application/jwt", True),
        ("at+jwt", False),
        ("application/at+jwt", False),
        ("dpop+jwt", False),
        ("JOSE", False),
        ("", False),
        (["JWT"], False),
    ],
)
def test_typ_header(env, typ, ok):
    app, ws, key, secret = env
    v = Verifier(app, _ws(app, ws))
    tok = _hs_raw(secret, {"kid": key.kid, "typ": typ}, _claims())
    if ok:
        assert v.verify(tok).sub == "u-1"
    else:
        assert _refused(v, tok) == "typ_not_allowed"


def test_jti_replay_cache(env):
    app, ws, key, secret = env
    tok = _hs(secret, key.kid, jti="j-1")
    v = Verifier(app, _ws(app, ws))
    assert v.verify(tok) and v.verify(tok)  # off by default: a token is reusable until it expires
    identity.set_settings(app, ws, jti_replay=True)
    v = Verifier(app, _ws(app, ws))
    assert v.verify(tok).sub == "u-1"
    assert _refused(v, tok) == "replayed"
    assert _refused(Verifier(app, _ws(app, ws)), tok) == "replayed"  # a new Verifier shares the cache
    assert _refused(v, _hs(secret, key.kid)) == "missing_claim:jti"
    assert _refused(v, _hs(secret, key.kid, jti=7)) == "bad_jti"
    assert v.verify(_hs(secret, key.kid, jti="j-2"))
    # A refused token never enters the cache: the genuine one still works afterwards.
    assert _refused(v, _hs("x" * 43, key.kid, jti="j-3")) == "bad_signature"
    assert v.verify(_hs(secret, key.kid, jti="j-3"))
    # Per workspace: the same jti in another workspace is another token.
    other = workspaces.create(app, "other", plan="pro")
    okey, osecret = identity.rotate(app, other)
    identity.set_settings(app, other, jti_replay=True)
    assert Verifier(app, _ws(app, other)).verify(_hs(osecret.reveal(), okey.kid, aud="other", jti="j-1"))


def test_issuer_required_when_set(env):
    from botctl.errors import UsageError

    app, ws, key, secret = env
    with pytest.raises(UsageError):
        identity.set_settings(app, ws, issuer="")  # an empty issuer would quietly turn the check off
    with pytest.raises(UsageError):
        identity.set_settings(app, ws, issuer=" https://acme.example")
    identity.set_settings(app, ws, issuer="https://acme.example")
    v = Verifier(app, _ws(app, ws))
    assert _refused(v, _hs(secret, key.kid)) == "missing_claim:iss"
    for bad in ("https://acme.example/", "acme.example", "https://acme.example.evil", "HTTPS://ACME.EXAMPLE"):
        assert _refused(v, _hs(secret, key.kid, iss=bad)) == "wrong_issuer"
    listed = _hs_raw(secret, {"kid": key.kid}, _claims(iss=["https://acme.example"]))
    assert _refused(v, listed) in ("wrong_issuer", "invalid_token")
    assert v.verify(_hs(secret, key.kid, iss="https://acme.example")).sub == "u-1"


def test_identity_rules_cli(cli, env):
    app, ws, key, secret = env
    r = cli("identity", "rules", "-w", "acme", "--require-email-verified", "--jti-replay", "--json")
    assert r.code == 0, r.err
    assert r.json()["require_email_verified"] is True and r.json()["jti_replay"] is True
    r = cli("identity", "rules", "-w", "acme", "--no-jti-replay", "--unicode-email", "--json")
    assert r.json() | {} == {
        **r.json(),
        "jti_replay": False,
        "unicode_email": True,
        "require_email_verified": True,
    }
    r = cli("identity", "list", "-w", "acme", "--json")
    assert r.json()["rules"]["unicode_email"] is True
    r = cli("audit", "--event", "workspace.identity_changed", "--json")
    assert len(r.ndjson()) == 2


def test_rules_removed_with_the_workspace(env, home):
    import sqlite3

    app, ws, *_ = env
    identity.set_settings(app, ws, jti_replay=True)
    workspaces.delete(app, "acme")
    rows = (
        sqlite3.connect(home.vault_db).execute("SELECT key FROM meta WHERE key LIKE 'identity%'").fetchall()
    )
    assert rows == []


# == 14. OAuth answers are capped at 1 MiB ===================================================================


def _app_cfg(token_url: str, **over) -> oauth.OAuthApp:
    from botctl.connectors import registry
    from botctl.secret import Secret

    return oauth.effective_app(
        registry.get("calendly"),
        source="global",
        client_id="cid",
        client_secret=Secret("client-secret-value"),
        settings={"token_url": token_url, "authorize_url": token_url.rsplit("/", 1)[0] + "/a", **over},
        config={"base_url_resolved": "https://api.calendly.com"},
    )


@pytest.mark.parametrize("kind", ["bloat", "endless"])
def test_token_endpoint_answer_capped(sites, kind):
    handler = (
        endless
        if kind == "endless"
        else answer(200, {"access_token": "tok", "token_type": "bearer", "pad": "x" * (2 << 20)})
    )
    site = sites(handler)
    cfg = _app_cfg(site.url + "/token")

    async def run():
        return await asyncio.wait_for(
            oauth._token_request(cfg, {"grant_type": "refresh_token", "refresh_token": "r"}), 15
        )

    t = time.monotonic()
    with pytest.raises(oauth._EndpointError) as e:
        asyncio.run(run())
    assert "1 MiB" in e.value.message and e.value.unknown
    assert time.monotonic() - t < 10


def test_metadata_answer_capped(sites):
    site = sites(answer(200, {"issuer": "https://as.example", "pad": "x" * (2 << 20)}))
    assert asyncio.run(oauth.fetch_metadata(site.url + "/.well-known/oauth-authorization-server")) is None
    small = sites(answer(200, {"issuer": "https://as.example"}))
    assert asyncio.run(oauth.fetch_metadata(small.url + "/m")) == {"issuer": "https://as.example"}


def test_revocation_answer_capped(sites):
    from botctl.secret import Secret

    site = sites(endless)
    cfg = _app_cfg(site.url + "/token", revoke_url=site.url + "/revoke")

    async def run():
        await asyncio.wait_for(oauth._revoke_request(cfg, Secret("tok"), "access_token"), 15)

    with pytest.raises(oauth._EndpointError):
        asyncio.run(run())


# == 15. the loopback listener ignores requests of other logins ==============================================


def test_listener_ignores_foreign_state_and_keeps_waiting():
    async def run() -> tuple[list[int], str, int]:
        listener = await oauth.LoopbackListener(port=0).start()
        listener.expect_state("the-real-state")
        redirect = listener.redirect_uri()
        waiting = asyncio.ensure_future(listener.wait(10))
        statuses = []
        async with httpx.AsyncClient() as http:
            # Any web page the user visits can make the browser request these (a fixed --redirect-port).
            for q in (
                "",
                "?code=x",
                "?code=x&state=guess",
                "?error=access_denied&state=nope",
                "?state=the-real-state&state=the-real-state",
                "?code=x&state=the-real-stat",
            ):
                statuses.append((await http.get(redirect + q, timeout=5)).status_code)
            assert not waiting.done()
            ok = asyncio.ensure_future(http.get(redirect + "?code=good&state=the-real-state", timeout=5))
            cb = await waiting
            await cb.respond(200, "ok", "ok")
            status = (await ok).status_code
        await listener.close()
        return statuses, cb.query, status

    statuses, query, status = asyncio.run(run())
    assert statuses == [400] * 6
    assert query == "code=good&state=the-real-state" and status == 200


def test_listener_timeout_says_foreign_requests_were_ignored():
    async def run() -> None:
        listener = await oauth.LoopbackListener(port=0).start()
        listener.expect_state("s" * 43)
        async with httpx.AsyncClient() as http:
            await http.get(listener.redirect_uri() + "?code=x&state=other", timeout=5)
        try:
            await listener.wait(0.3)
        finally:
            await listener.close()

    with pytest.raises(oauth.AuthorizationTimeout) as e:
        asyncio.run(run())
    assert e.value.exit_code == 26 and "1 request" in e.value.message


@pytest.fixture
def peer():
    from test_oauth_as import InteropAS

    with InteropAS() as s:
        yield s


CALENDLY_CONFIG = {"base_url_resolved": "https://api.calendly.com"}


def _connect(app, ws, peer, ui, **kw):
    from botctl.connectors import registry
    from botctl.secret import Secret
    from test_oauth_as import CLIENT_ID, CLIENT_SECRET

    calendly = registry.get("calendly")
    cfg = oauth.effective_app(
        calendly,
        source="global",
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        settings={**peer.app_settings(), "token_auth": "client_secret_basic"},
        config=CALENDLY_CONFIG,
    )
    return asyncio.run(
        oauth.connect(
            app, ws, calendly, CALENDLY_CONFIG, cfg, mode="no_browser", ui=ui, skip_check=True, **kw
        )
    )


class _Browser(oauth.FlowUI):
    """Plays the browser: when the flow shows the URL, `action(url)` runs in a thread."""

    def __init__(self, action: Callable[[str], Any]) -> None:
        self.action = action
        self.thread: threading.Thread | None = None
        self.result: Any = None

    def show_url(self, url: str, *, opened: bool, mode: str) -> None:
        def run() -> None:
            try:
                self.result = self.action(url)
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                self.result = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        assert self.thread is not None
        self.thread.join(10)
        return self.result


def _redirect(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query)["redirect_uri"][0]


def test_a_web_page_cannot_end_the_login(app, peer):
    """A page fires forged callbacks at the listener before the user approves: the login still completes."""
    from test_oauth_as import browse

    ws = workspaces.create(app, "acme", plan="pro")
    seen: list[int] = []

    def page_then_user(url: str) -> httpx.Response:
        redirect = _redirect(url)
        for q in ("?code=stolen&state=attacker", "?error=access_denied", "?code=x"):
            seen.append(httpx.get(redirect + q, timeout=5).status_code)
        return browse(url)

    ui = _Browser(page_then_user)
    result = _connect(app, ws, peer, ui)
    assert ui.join().status_code == 200 and seen == [400, 400, 400]
    assert result.connection.status == "active"
    assert peer.token_requests == {"authorization_code": 1}  # the forged codes were never exchanged


def test_replayed_response_of_an_earlier_login_is_ignored(app, peer):
    from urllib.parse import urlsplit

    from test_oauth_as import browse

    ws = workspaces.create(app, "acme", plan="pro")
    captured: dict[str, str] = {}

    def first(url: str) -> httpx.Response:
        hop = browse(url, stop_before=_redirect(url))
        captured["query"] = urlsplit(hop.headers["location"]).query
        return httpx.get(hop.headers["location"], timeout=5)

    first_ui = _Browser(first)
    _connect(app, ws, peer, first_ui)
    assert first_ui.join().status_code == 200
    ui = _Browser(lambda url: httpx.get(_redirect(url) + "?" + captured["query"], timeout=5))
    with pytest.raises(oauth.AuthorizationTimeout) as e:
        _connect(app, ws, peer, ui, timeout=1.0)
    assert "1 request" in e.value.message and e.value.exit_code == 26
    assert ui.join().status_code == 400
    assert peer.token_requests == {"authorization_code": 1}  # the old code was never sent again
