"""Who may read the console: whoever opened the one-time link `botctl console` printed or opened.

The link carries a random token; the first request with it is answered with a session cookie (HttpOnly,
SameSite=Strict, its own name per port) and a redirect to a URL without the token. After that the token
is spent, and every request without the cookie gets 401. Both are compared in constant time.

Every response also checks the Host header (only the loopback names of this port: a DNS-rebinding page
that reaches 127.0.0.1 under its own name is refused), allows only GET and HEAD (the console changes
nothing), and carries a strict CSP: scripts and styles from this origin's /static only, no inline code,
Trusted Types with no policy, no framing, no referrer.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from typing import Any

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
LOGIN_PATH = "/login"

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]
]


class Access:
    """The one-time token and the session it is exchanged for, for the console on `port`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.token = secrets.token_urlsafe(32)
        self._session = secrets.token_urlsafe(32)
        self._spent = False
        self._lock = threading.Lock()
        self.cookie_name = f"botctl_console_{port}"  # cookies ignore ports: two consoles must not collide
        self.hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}
        self.on_spent: Callable[[], None] | None = None  # e.g. remove the page that held the link

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{LOGIN_PATH}?token={self.token}"

    def exchange(self, token: str) -> str | None:
        """The session value for the right token, once; None for any other token or a second use."""
        with self._lock:
            good = hmac.compare_digest(token.encode(), self.token.encode())
            if not good or self._spent:
                return None
            self._spent = True
        if self.on_spent is not None:
            self.on_spent()
        return self._session

    def admits(self, cookie: str | None) -> bool:
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._session.encode())

    def set_cookie(self) -> bytes:
        return (f"{self.cookie_name}={self._session}; Path=/; HttpOnly; SameSite=Strict").encode()


def _cookie(scope: dict[str, Any], name: str) -> str | None:
    from http.cookies import CookieError, SimpleCookie

    for key, value in scope.get("headers") or []:
        if key == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                return None
            if name in jar:
                return jar[name].value
    return None


def _host(scope: dict[str, Any]) -> bytes | None:
    for key, value in scope.get("headers") or []:
        if key == b"host":
            return value.lower()
    return None


class Guard:
    """ASGI middleware in front of every route: host, method, session, security headers."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        if _host(scope) not in self.access.hosts:
            await _plain(
                with_headers, 421, "This console answers only at the address botctl console printed."
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(with_headers, 405, "The console is read-only.", extra=[(b"allow", b"GET, HEAD")])
            return
        if scope["path"] != LOGIN_PATH and not self.access.admits(_cookie(scope, self.access.cookie_name)):
            await _plain(
                with_headers,
                401,
                "Open the link `botctl console` printed (or run it again for a new "
                "one): this browser has no session for this console.",
            )
            return
        await self.app(scope, receive, with_headers)


async def _plain(send, status: int, text: str, *, extra: list[tuple[bytes, bytes]] | None = None) -> None:  # noqa: ANN001
    body = text.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
