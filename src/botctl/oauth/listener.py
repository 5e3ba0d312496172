"""The browser side of a login (RFC 6749 §4.1, RFC 7636, RFC 8252 §7.3, RFC 9207): PKCE, the
single-use `state`, the authorization request and the checks on its redirect (`AuthRequest`), the
parsing of a redirect's query or of an address pasted back, and the one-shot loopback listener.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botctl.errors import UsageError
from botctl.oauth.clients import DEFAULT_REDIRECT_PATH, OAuthApp
from botctl.oauth.protocol import AuthorizationTimeout, CallbackRejected, callback_error, clean_text

if TYPE_CHECKING:
    import asyncio


# -- PKCE, state, the authorization request -------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """RFC 7636 §4.1: 32 octets from the CSPRNG, base64url → 43 unreserved characters (256 bits)."""
    return _b64url(os.urandom(32))


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    return secrets.token_urlsafe(32)  # 256 bits: well above the 128-bit bar


@dataclass
class AuthRequest:
    """One login attempt: its state, PKCE verifier and redirect URI. Its callback is accepted once."""

    app: OAuthApp
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str = field(default_factory=new_state)
    verifier: str | None = None
    used: bool = False

    def __post_init__(self) -> None:
        if self.verifier is None and self.app.pkce:
            self.verifier = new_verifier()

    @property
    def url(self) -> str:
        from urllib.parse import urlencode, urlsplit, urlunsplit

        params = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.app.scope_separator.join(self.scopes),
            "state": self.state,
        }
        if self.verifier:
            params |= {"code_challenge": s256(self.verifier), "code_challenge_method": "S256"}
        parts = urlsplit(self.app.authorize_url)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def accept(self, params: Mapping[str, str]) -> str:
        """Check a redirect's parameters and return the code. Raises on anything else; single use."""
        if self.used:
            raise CallbackRejected(
                "this authorization response was already used (a replay); nothing was stored.",
                hint="Run the connect command again.",
                code="state_replayed",
            )
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            raise CallbackRejected(
                "the redirect's state does not match this login attempt (possible cross-site request forgery).",
                hint="Nothing was stored. Run the connect command again and finish it in the same browser.",
            )
        self.used = True
        iss = params.get("iss")
        if iss is not None and self.app.issuer is not None and iss != self.app.issuer:
            raise CallbackRejected(
                f"the redirect names issuer {clean_text(iss)!r}, not {self.app.issuer!r} "
                "(possible mix-up attack); nothing was stored.",
                hint="Check the OAuth app's URLs (botctl oauth-app list).",
                code="iss_mismatch",
            )
        if iss is None and self.app.iss_required:
            raise CallbackRejected(
                "the authorization server promises an iss parameter and sent none; nothing was stored.",
                hint="Run the connect command again.",
                code="iss_mismatch",
            )
        if params.get("error"):
            raise callback_error(self.app, params["error"], params.get("error_description") or "")
        code = params.get("code")
        if not code:
            raise CallbackRejected("the redirect carried no authorization code.", code="no_code")
        return code


def parse_query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qs

    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=50)
    except ValueError:
        raise CallbackRejected("the redirect's query string is malformed.", code="bad_callback") from None
    if any(len(v) > 1 for v in parsed.values()):
        # RFC 6749 §3.1: parameters MUST NOT repeat; a duplicate state/code is an injection attempt.
        raise CallbackRejected("the redirect repeats a parameter; nothing was stored.", code="bad_callback")
    return {k: v[0] for k, v in parsed.items()}


def parse_pasted(text: str, redirect_uri: str) -> dict[str, str]:
    """The address the browser ended on (or just its query string), pasted back by the user."""
    from urllib.parse import urlsplit

    text = text.strip()
    if not text:
        raise CallbackRejected(
            "nothing was pasted.",
            hint="Paste the whole address from the browser's address bar.",
            code="bad_callback",
        )
    if "://" in text:
        got, want = urlsplit(text), urlsplit(redirect_uri)
        if (got.scheme, got.hostname, got.port, got.path) != (
            want.scheme,
            want.hostname,
            want.port,
            want.path,
        ):
            raise CallbackRejected(
                f"that address is not botctl's redirect URI ({want.scheme}://{want.netloc}{want.path}).",
                hint="Paste the address the browser was sent to after you approved.",
                code="bad_callback",
            )
        return parse_query(got.query)
    return parse_query(text.lstrip("?"))


# -- the loopback listener (RFC 8252 §7.3) ---------------------------------------------------------------

_PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
    '<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{message}</p></body></html>'
)
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _html(text: str) -> str:
    import html

    return html.escape(text)


class Callback:
    """The one request that came to the redirect path: its query, and the browser waiting for a page."""

    def __init__(self, query: str, writer: asyncio.StreamWriter) -> None:
        self.query = query
        self.writer = writer
        self.answered = False

    async def respond(self, status: int, title: str, message: str) -> None:
        if self.answered:
            return
        self.answered = True
        await _write_page(self.writer, status, title, message)


async def _write_page(writer: asyncio.StreamWriter, status: int, title: str, message: str) -> None:
    body = _PAGE.format(title=_html(title), message=_html(message)).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body)
        await writer.drain()
    except (ConnectionError, RuntimeError):
        pass
    finally:
        writer.close()


class LoopbackListener:
    """Listens on 127.0.0.1 (never 0.0.0.0): 404 for every path but the redirect path. Once the flow
    names the login's `state` (`expect_state`), a request on the path whose `state` differs is answered
    400 and ignored — any web page can make the browser request a fixed redirect port, and must not be
    able to end the login — and the first request carrying the right one is handed to the flow; then the
    listener stops accepting connections."""

    MAX_CONNECTIONS = 32  # at once; more are closed unanswered (a page cannot pile up idle connections)

    def __init__(self, path: str = DEFAULT_REDIRECT_PATH, port: int = 0) -> None:
        self.path = path or "/"
        self.port = port
        self.host = "127.0.0.1"
        self.ignored = 0  # requests on the path that carried another state (or none)
        self._state: str | None = None
        self._server: asyncio.Server | None = None
        self._future: asyncio.Future[Callback] | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def expect_state(self, state: str) -> None:
        """Only a request carrying this `state` ends the wait (call before showing the URL)."""
        self._state = state

    async def start(self) -> LoopbackListener:
        import asyncio

        self._future = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=16 * 1024)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {self.host}:{self.port} for the OAuth redirect ({exc.strerror or exc}).",
                hint="Another program holds that port: stop it, or register and use another --redirect-port.",
                code="port_in_use",
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def redirect_uri(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{self.path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.MAX_CONNECTIONS:
            writer.close()
            return
        self._writers.add(writer)
        handed_over = False
        try:
            handed_over = await self._serve(reader, writer)
        finally:
            if not handed_over:
                self._writers.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True when it is the callback (its writer then belongs to the flow)."""
        import asyncio

        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return False
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            await _write_page(writer, 400, "Bad request", "botctl did not understand that request.")
            return False
        method, target, _ = parts
        path, _, query = target.partition("?")
        assert self._future is not None
        if path != self.path or self._future.done():
            await _write_page(writer, 404, "Not found", "Nothing here.")
            return False
        if method != "GET":
            await _write_page(writer, 405, "Method not allowed", "Only the browser's redirect belongs here.")
            return False
        if self._state is not None and not self._state_matches(query):
            self.ignored += 1
            await _write_page(
                writer,
                400,
                "Not this sign-in",
                "This address does not belong to the sign-in botctl is waiting for; it was ignored.",
            )
            return False
        self._future.set_result(Callback(query, writer))
        if self._server is not None:
            self._server.close()  # exactly one callback: stop accepting connections now
        return True

    def _state_matches(self, query: str) -> bool:
        assert self._state is not None
        try:
            got = parse_query(query).get("state") or ""
        except CallbackRejected:
            return False
        return hmac.compare_digest(got.encode(), self._state.encode())

    async def wait(self, timeout: float) -> Callback:
        import asyncio

        assert self._future is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # Ctrl-C: asyncio.run cancelled us; not a timeout
                raise asyncio.CancelledError from None
            n = self.ignored
            ignored = (
                (
                    f" ({n} request{'s' if n != 1 else ''} to the redirect address carried another sign-in's "
                    f"state and {'were' if n != 1 else 'was'} ignored)"
                )
                if n
                else ""
            )
            raise AuthorizationTimeout(
                f"no answer from the browser within {timeout:g} s{ignored}; nothing was stored.",
                hint="Run the connect command again (--timeout SECONDS for longer), or use "
                "--paste / --device when the browser is on another machine.",
            ) from None

    async def close(self, keep: Callback | None = None) -> None:
        import asyncio

        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            if keep is None or w is not keep.writer:
                w.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                pass
