"""An independent authorization server for interop tests: oauthlib's server components (not authlib,
which the sandbox's server is built on), served by http.server on 127.0.0.1.

`InteropAS` is a standards-compliant peer configured the way docs/design.md §4.2 asks of one: exact
redirect matching except the loopback port, single-use codes, PKCE S256 enforced (and no verifier
without a challenge), refresh-token rotation with reuse detection that revokes the whole family
(RFC 9700 §4.14.2), RFC 7009 revocation, RFC 8414 metadata and the RFC 9207 `iss` parameter.
Behaviour switches (`deny`, `wrong_iss`, `fault`, `grace`, `token_delay`) drive the client's error
paths. It counts token requests by grant type, which is how the single-flight tests count refreshes.

The tests at the bottom check the peer itself, so a client test passing against it means something.
Other test modules import `InteropAS`, `browse` and `DeviceScript` from here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from oauthlib.oauth2 import RequestValidator, Server
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

CLIENT_ID = "interop-client"
CLIENT_SECRET = "interop-secret-" + "7" * 24
PUBLIC_CLIENT_ID = "interop-public"
REDIRECTS = ("http://127.0.0.1/callback",)
SCOPES = (
    "users:read",
    "scheduled_events:read",
    "scheduled_events:write",
    "event_types:read",
    "availability:read",
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
)


@dataclass
class Client:
    client_id: str
    secret: str | None
    auth: str  # client_secret_basic | client_secret_post | none
    redirect_uris: tuple[str, ...] = REDIRECTS


@dataclass
class RefreshRecord:
    family: str
    client_id: str
    scopes: list[str]
    used: bool = False
    revoked: bool = False
    replacement: str | None = None


@dataclass
class AccessRecord:
    family: str
    scopes: list[str]
    expires_at: float
    revoked: bool = False


def _loopback_match(registered: str, given: str) -> bool:
    """Exact match, except the port of a loopback redirect (RFC 8252 §7.3, RFC 9700 §2.1)."""
    r, g = urlsplit(registered), urlsplit(given)
    if r.hostname in ("127.0.0.1", "::1") and r.port is None:
        return (r.scheme, r.hostname, r.path, r.query) == (
            g.scheme,
            g.hostname,
            g.path,
            g.query,
        ) and not g.fragment
    return registered == given


class Validator(RequestValidator):
    def __init__(self, server: InteropAS) -> None:
        self.s = server

    # -- clients --------------------------------------------------------------------------------

    def _basic(self, request) -> tuple[str, str] | None:
        header = (request.headers or {}).get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        cid, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return unquote_plus(cid), unquote_plus(secret)

    def client_authentication_required(self, request, *args, **kwargs):
        basic = self._basic(request)
        client = self.s.clients.get(basic[0] if basic else request.client_id or "")
        return client is None or client.secret is not None

    def authenticate_client(self, request, *args, **kwargs):
        basic = self._basic(request)
        if basic is not None:
            cid, secret, method = basic[0], basic[1], "client_secret_basic"
        else:
            cid, secret, method = request.client_id, request.client_secret, "client_secret_post"
        client = self.s.clients.get(cid or "")
        if client is None or client.secret is None or not secret:
            return False
        if not hmac.compare_digest(secret, client.secret) or method != client.auth:
            return False  # strict: the registered method only
        request.client = client
        request.client_id = cid
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        client = self.s.clients.get(client_id or "")
        if client is None or client.secret is not None:
            return False
        request.client = client
        return True

    def validate_client_id(self, client_id, request, *args, **kwargs):
        return client_id in self.s.clients

    # -- authorization --------------------------------------------------------------------------

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        return any(_loopback_match(r, redirect_uri) for r in self.s.clients[client_id].redirect_uris)

    def get_default_redirect_uri(self, client_id, request, *args, **kwargs):
        return None

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        return response_type == "code"

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        return set(scopes) <= set(SCOPES)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return ["users:read"]

    def is_pkce_required(self, client_id, request):
        return True

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        self.s.codes[code["code"]] = {
            "client_id": client_id,
            "redirect_uri": request.redirect_uri,
            "scopes": list(request.scopes),
            "challenge": request.code_challenge,
            "method": request.code_challenge_method,
            "used": False,
        }

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        found = self.s.codes.get(code)
        if found is None or found["used"] or found["client_id"] != client_id:
            return False
        request.scopes = found["scopes"]
        request.user = "ada"
        return True

    def get_code_challenge(self, code, request):
        found = self.s.codes.get(code)
        return found["challenge"] if found else None

    def get_code_challenge_method(self, code, request):
        found = self.s.codes.get(code)
        return found["method"] if found else None

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        found = self.s.codes.get(code)
        return found is not None and found["redirect_uri"] == redirect_uri

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        self.s.codes[code]["used"] = True

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type in ("authorization_code", "refresh_token")

    # -- tokens ---------------------------------------------------------------------------------

    def save_bearer_token(self, token, request, *args, **kwargs):
        s = self.s
        with s.lock:
            family = getattr(request, "family", None) or secrets.token_hex(8)
            old = getattr(request, "refresh_record", None)
            new_refresh = token.get("refresh_token")
            if old is not None and new_refresh and new_refresh != request.refresh_token:
                old.used = True
                old.replacement = new_refresh
            if new_refresh and new_refresh not in s.refresh:
                s.refresh[new_refresh] = RefreshRecord(family, request.client_id, list(request.scopes))
            s.access[token["access_token"]] = AccessRecord(
                family, list(request.scopes), time.time() + token.get("expires_in", 3600)
            )
            s.issued.append(token)
        return request.redirect_uri

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        s = self.s
        with s.lock:
            rec = s.refresh.get(refresh_token)
            if rec is None or rec.revoked or rec.client_id != request.client_id:
                return False
            if rec.used:
                replacement = s.refresh.get(rec.replacement or "")
                if s.grace and replacement is not None and not replacement.used:
                    pass  # Shopify-style: the old token stays valid until its replacement is first used
                else:
                    s.revoke_family(rec.family)  # reuse detected: revoke the whole grant (RFC 9700 §4.14.2)
                    s.reuse_detected += 1
                    return False
            if rec.replacement:  # the grace path: using the old one retires the unused replacement
                s.refresh[rec.replacement].revoked = True
            request.family = rec.family
            request.refresh_record = rec
            request.user = "ada"
            return True

    def get_original_scopes(self, refresh_token, request, *args, **kwargs):
        return self.s.refresh[refresh_token].scopes

    def rotate_refresh_token(self, request):
        return self.s.rotate

    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        s = self.s
        with s.lock:
            if token in s.refresh:
                s.revoke_family(s.refresh[token].family)
            elif token in s.access:
                s.access[token].revoked = True
            s.revocations.append((token_type_hint, token))


class InteropAS:
    def __init__(
        self,
        *,
        auth: str = "client_secret_basic",
        rotate: bool = True,
        access_ttl: int = 3600,
        send_iss: bool = True,
        mint: Any = None,
    ) -> None:
        self.clients = {
            CLIENT_ID: Client(CLIENT_ID, CLIENT_SECRET, auth),
            PUBLIC_CLIENT_ID: Client(PUBLIC_CLIENT_ID, None, "none"),
        }
        self.rotate = rotate
        self.access_ttl = access_ttl
        self.send_iss = send_iss
        self.mint = mint  # callable(scopes, ttl) -> access token string (e.g. a sandbox-accepted token)
        self.deny = False
        self.wrong_iss = False
        self.grace = False
        self.fault: str | None = None  # "rotate_then_fail" (once) | "500" (always)
        self.token_delay = 0.0
        self.echo = False  # a careless server: error descriptions quote the refresh token it refused
        self.codes: dict[str, dict[str, Any]] = {}
        self.refresh: dict[str, RefreshRecord] = {}
        self.access: dict[str, AccessRecord] = {}
        self.issued: list[dict[str, Any]] = []
        self.revocations: list[tuple[str, str]] = []
        self.token_requests: Counter[str] = Counter()
        self.reuse_detected = 0
        self.lock = threading.RLock()
        self.server = Server(
            Validator(self),
            token_expires_in=lambda request: self.access_ttl,
            token_generator=self._access_token,
        )
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def _access_token(self, request) -> str:
        if self.mint is not None:
            return self.mint(list(request.scopes or ()), self.access_ttl)
        return "at-" + secrets.token_urlsafe(24)

    def revoke_family(self, family: str) -> None:
        for rec in self.refresh.values():
            if rec.family == family:
                rec.revoked = True
        for rec in self.access.values():
            if rec.family == family:
                rec.revoked = True

    def refresh_token_ok(self, token: str) -> bool:
        rec = self.refresh.get(token)
        return rec is not None and not rec.revoked and not rec.used

    def current_refresh_tokens(self) -> list[str]:
        return [t for t, r in self.refresh.items() if not r.revoked and not r.used]

    def __enter__(self) -> InteropAS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def app_settings(self, **extra: Any) -> dict[str, Any]:
        """What `botctl oauth-app set` needs to point at this server."""
        return {
            "authorize_url": self.url + "/authorize",
            "token_url": self.url + "/token",
            "revoke_url": self.url + "/revoke",
            "metadata_url": self.url + "/.well-known/oauth-authorization-server",
            **extra,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "revocation_endpoint": self.url + "/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "authorization_response_iss_parameter_supported": self.send_iss,
        }


def _handler(s: InteropAS) -> type[BaseHTTPRequestHandler]:
    # oauthlib refuses plain-http URIs for its endpoints; the server is https in all but transport here.
    def uri(path: str) -> str:
        return "https://as.interop.test" + path

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: str | bytes = b"") -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/.well-known/oauth-authorization-server":
                self._send(200, {"Content-Type": "application/json"}, json.dumps(s.metadata()))
                return
            if path != "/authorize":
                self._send(404, {}, "not found")
                return
            query = parse_qs(urlsplit(self.path).query)
            method = (query.get("code_challenge_method") or [None])[0]
            try:
                scopes, creds = s.server.validate_authorization_request(
                    uri(self.path), "GET", None, dict(self.headers)
                )
                if method != "S256":  # S256 only: plain is a downgrade
                    raise oauth_errors.InvalidRequestError(
                        description="code_challenge_method must be S256", request=None
                    )
            except oauth_errors.FatalClientError as exc:
                self._send(400, {"Content-Type": "text/plain"}, f"fatal: {exc.error}")
                return
            except oauth_errors.OAuth2Error as exc:
                redirect = (query.get("redirect_uri") or [""])[0]
                self._redirect(redirect, {"error": exc.error, "state": (query.get("state") or [""])[0]})
                return
            if s.deny:
                self._redirect(
                    creds["redirect_uri"],
                    {
                        "error": "access_denied",
                        "error_description": "The user said no",
                        "state": creds["state"],
                    },
                )
                return
            headers, _, status = s.server.create_authorization_response(
                uri(self.path), "GET", None, dict(self.headers), scopes=scopes, credentials={"user": "ada"}
            )
            location = headers["Location"]
            if s.send_iss:
                parts = urlsplit(location)
                iss = "https://evil.example" if s.wrong_iss else s.issuer
                location = urlunsplit(parts._replace(query=parts.query + "&" + urlencode({"iss": iss})))
            self._send(status, {"Location": location})

        def _redirect(self, redirect: str, params: dict[str, str]) -> None:
            if s.send_iss:
                params = {**params, "iss": s.issuer}
            self._send(302, {"Location": redirect + ("&" if "?" in redirect else "?") + urlencode(params)})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            headers = dict(self.headers)
            if path == "/token":
                grant = (parse_qs(body).get("grant_type") or ["?"])[0]
                with s.lock:
                    s.token_requests[grant] += 1
                if s.fault == "500":
                    self._send(500, {"Content-Type": "text/plain"}, "boom")
                    return
                h, b, status = s.server.create_token_response(uri(path), "POST", body, headers)
                if s.token_delay:
                    time.sleep(s.token_delay)
                if s.echo and status == 400:
                    refused = (parse_qs(body).get("refresh_token") or [""])[0]
                    err = json.loads(b)
                    b = json.dumps({**err, "error_description": f"{err.get('error_description')}: {refused}"})
                if s.fault == "rotate_then_fail" and status == 200:
                    s.fault = None  # processed (and rotated), but the answer is lost
                    self._send(500, {"Content-Type": "text/plain"}, "internal error")
                    return
                self._send(status, h, b or "")
            elif path == "/revoke":
                h, b, status = s.server.create_revocation_response(uri(path), "POST", body, headers)
                self._send(status, h, b or "")
            else:
                self._send(404, {}, "not found")

    return Handler


def browse(url: str, *, stop_before: str | None = None, timeout: float = 10.0) -> httpx.Response:
    """A browser, as far as OAuth cares: open the authorize URL and follow its redirects to the
    loopback callback; with `stop_before`, return the redirect whose target starts with it instead."""
    with httpx.Client(timeout=timeout, follow_redirects=False) as http:
        response = http.get(url)
        while response.is_redirect:
            location = response.headers["location"]
            if stop_before and location.startswith(stop_before):
                return response
            response = http.get(location)
        return response


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


# -- a scripted device-authorization server (RFC 8628) for the polling tests ----------------------------


@dataclass
class DeviceScript:
    """Answers the device endpoint once, then the token endpoint from `answers` in order; records the
    fake clock's time at each poll."""

    clock: Any
    answers: list[tuple[int, dict[str, Any]]]
    device_response: dict[str, Any] = field(default_factory=dict)
    polls: list[float] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)

    def __enter__(self) -> DeviceScript:
        script = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                script.logged.append(fmt % args)

            def do_POST(self) -> None:
                body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                if self.path == "/device":
                    status, payload = (
                        200,
                        {
                            "device_code": "dev-code-1",
                            "user_code": "WDJB-MJHT",
                            "verification_uri": "https://as.example/device",
                            "expires_in": 600,
                            **script.device_response,
                        },
                    )
                else:
                    assert body["grant_type"] == ["urn:ietf:params:oauth:grant-type:device_code"]
                    assert body["device_code"] == ["dev-code-1"]
                    script.polls.append(script.clock.now)
                    status, payload = (
                        script.answers.pop(0) if script.answers else (400, {"error": "authorization_pending"})
                    )
                data = json.dumps({k: v for k, v in payload.items() if v is not None}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# -- the peer itself ------------------------------------------------------------------------------------


@pytest.fixture
def peer():
    with InteropAS() as s:
        yield s


def _authorize(peer: InteropAS, **params: str) -> httpx.Response:
    base = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "http://127.0.0.1:5555/callback",
        "scope": "users:read",
        "state": "s" * 30,
    }
    return httpx.get(peer.url + "/authorize?" + urlencode({**base, **params}))


def _code(response: httpx.Response) -> str:
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]


def _token(peer: InteropAS, **data: str) -> httpx.Response:
    return httpx.post(
        peer.url + "/token",
        data={"grant_type": "authorization_code", "redirect_uri": "http://127.0.0.1:5555/callback", **data},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )


def test_peer_enforces_redirect_matching_except_loopback_port(peer):
    verifier, challenge = pkce_pair()
    ok = _authorize(peer, code_challenge=challenge, code_challenge_method="S256")
    assert ok.status_code == 302 and "code=" in ok.headers["location"]
    for bad in (
        "http://127.0.0.1:5555/other",
        "http://localhost:5555/callback",
        "http://evil.example/callback",
    ):
        r = _authorize(peer, redirect_uri=bad, code_challenge=challenge, code_challenge_method="S256")
        assert r.status_code == 400, bad


def test_peer_codes_are_single_use_and_pkce_is_enforced(peer):
    verifier, challenge = pkce_pair()
    code = _code(_authorize(peer, code_challenge=challenge, code_challenge_method="S256"))
    assert (
        _token(peer, code=code, code_verifier="x" * 43).json()["error"] == "invalid_grant"
    )  # wrong verifier
    code = _code(_authorize(peer, code_challenge=challenge, code_challenge_method="S256"))
    assert _token(peer, code=code).status_code == 400  # challenge without verifier
    code = _code(_authorize(peer, code_challenge=challenge, code_challenge_method="S256"))
    assert _token(peer, code=code, code_verifier=verifier).status_code == 200
    assert _token(peer, code=code, code_verifier=verifier).json()["error"] == "invalid_grant"  # replay
    plain = _authorize(peer, code_challenge=verifier, code_challenge_method="plain")
    assert "error=invalid_request" in plain.headers["location"]  # S256 only
    none = _authorize(peer)
    assert "error=" in none.headers["location"]  # PKCE required


def test_peer_rotation_and_reuse_detection(peer):
    verifier, challenge = pkce_pair()
    code = _code(_authorize(peer, code_challenge=challenge, code_challenge_method="S256"))
    first = _token(peer, code=code, code_verifier=verifier).json()
    r1 = httpx.post(
        peer.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    ).json()
    assert r1["refresh_token"] != first["refresh_token"]
    reuse = httpx.post(
        peer.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert reuse.json()["error"] == "invalid_grant"
    assert not peer.refresh_token_ok(r1["refresh_token"])  # the family is revoked
    wrong_method = httpx.post(
        peer.url + "/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": "x",
        },
    )
    assert wrong_method.json()["error"] == "invalid_client"
