"""The three ways to get a grant: the browser (opened, or its URL printed with `--no-browser`) with
the loopback listener, `--paste` (the final redirect address read back), and the device flow (RFC
8628: `interval`, `slow_down`, `authorization_pending`, `access_denied`, `expired_token`; the clock
and the sleep are parameters, so tests check the timing without sleeping); and `FlowUI`, how a flow
talks to the person connecting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError, Transient, UsageError
from botctl.oauth.clients import DEFAULT_REDIRECT_PATH, OAuthApp
from botctl.oauth.listener import AuthRequest, Callback, LoopbackListener, parse_pasted, parse_query
from botctl.oauth.protocol import (
    DEVICE_GRANT,
    AuthorizationDenied,
    AuthorizationTimeout,
    EndpointError,
    ServerError,
    TokenSet,
    clean_text,
    exchange_error,
    token_request,
    token_set,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

DEFAULT_TIMEOUT_S = 300.0  # how long connect waits for the browser / the device approval

Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]


# -- what the person connecting sees -------------------------------------------------------------------


class FlowUI:
    """How a flow talks to the person connecting. The CLI subclasses it; this default is silent."""

    def show_url(self, url: str, *, opened: bool, mode: str) -> None:
        pass

    def show_device_code(self, user_code: str, verification_uri: str, complete_uri: str | None) -> None:
        pass

    def waiting(self, message: str) -> AbstractContextManager[Any]:
        import contextlib

        return contextlib.nullcontext()

    def read_pasted(self, redirect_uri: str) -> str:
        raise UsageError("--paste needs a terminal to paste into.", hint="Use --no-browser or --device.")

    def info(self, message: str) -> None:
        pass


def browser_available() -> bool:
    """False on a headless Unix box (no DISPLAY / WAYLAND_DISPLAY and no $BROWSER), e.g. over SSH."""
    import sys

    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32", "cygwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_browser(url: str) -> bool:
    """Open `url` with `webbrowser`, only for http(s) URLs (a file: or javascript: URL is never opened)."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme not in ("http", "https"):
        return False
    import webbrowser

    try:
        return bool(webbrowser.open(url, new=1, autoraise=True))
    except webbrowser.Error:
        return False


async def _open_in_background(url: str) -> bool:
    """`open_browser` on a daemon thread: webbrowser waits for a $BROWSER command (and for console
    browsers) to exit, and such a browser needs our listener running to finish the redirect."""
    import asyncio
    import concurrent.futures
    import threading

    done: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def run() -> None:
        try:
            result = open_browser(url)
        except Exception:  # noqa: BLE001 - no browser is not an error: the URL is printed too
            result = False
        if not done.done():
            done.set_result(result)

    threading.Thread(target=run, name="botctl-browser", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), 2.0)
    except TimeoutError:
        return True  # still running: a browser that stays in the foreground


@dataclass
class Authorization:
    """A flow's result: the tokens, and (browser flows) the page the browser is still waiting for."""

    tokens: TokenSet
    flow: str
    callback: Callback | None = None

    async def finish(self, ok: bool, message: str = "") -> None:
        if self.callback is None:
            return
        if ok:
            await self.callback.respond(
                200, "botctl is connected", "botctl is connected; you can close this tab."
            )
        else:
            await self.callback.respond(
                400, "botctl could not connect", (message or "See the terminal.") + " You can close this tab."
            )


async def exchange_code(req: AuthRequest, code: str, vendor_name: str) -> TokenSet:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri}
    if req.verifier:
        data["code_verifier"] = req.verifier
    if req.app.scope_in_token_request:
        data["scope"] = req.app.scope_separator.join(req.scopes)
    data.update(dict(req.app.token_params))
    try:
        return token_set(await token_request(req.app, data))
    except (ServerError, EndpointError) as exc:
        raise exchange_error(exc, vendor_name, "exchanging the authorization code failed") from None


async def browser_flow(
    app_cfg: OAuthApp, *, ui: FlowUI, vendor_name: str, open_it: bool, timeout: float = DEFAULT_TIMEOUT_S
) -> Authorization:
    from urllib.parse import urlsplit

    fixed = urlsplit(app_cfg.redirect_uri) if app_cfg.redirect_uri else None
    listener = await LoopbackListener(
        fixed.path if fixed else DEFAULT_REDIRECT_PATH, (fixed.port or 0) if fixed else 0
    ).start()
    callback: Callback | None = None
    try:
        host = fixed.hostname if fixed and fixed.hostname != "::1" else "127.0.0.1"
        req = AuthRequest(app_cfg, listener.redirect_uri(host or "127.0.0.1"), app_cfg.scopes)
        listener.expect_state(req.state)  # before the URL exists anywhere: other requests cannot end the wait
        opened = await _open_in_background(req.url) if open_it else False
        ui.show_url(req.url, opened=opened, mode="browser" if opened else "no_browser")
        with ui.waiting(f"Waiting for you to approve botctl at {vendor_name} (Ctrl-C to cancel)"):
            callback = await listener.wait(timeout)
        try:
            code = req.accept(parse_query(callback.query))
            tokens = await exchange_code(req, code, vendor_name)
        except BotctlError as exc:
            await callback.respond(400, "botctl could not connect", exc.message + " You can close this tab.")
            raise
        return Authorization(tokens, "browser" if opened else "no_browser", callback)
    finally:
        # On success the browser's request stays open: Authorization.finish() answers it.
        await listener.close(keep=callback if callback is not None and not callback.answered else None)


async def paste_flow(app_cfg: OAuthApp, *, ui: FlowUI, vendor_name: str) -> Authorization:
    """For a browser on another machine: print the URL, read the final redirect address back."""
    import socket
    from urllib.parse import urlsplit

    fixed = urlsplit(app_cfg.redirect_uri) if app_cfg.redirect_uri else None
    if fixed is not None and fixed.port:
        redirect = app_cfg.redirect_uri or ""
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a free port number for the URI
            s.bind(("127.0.0.1", 0))
            redirect = (
                f"http://127.0.0.1:{s.getsockname()[1]}{fixed.path if fixed else DEFAULT_REDIRECT_PATH}"
            )
    req = AuthRequest(app_cfg, redirect, app_cfg.scopes)
    ui.show_url(req.url, opened=False, mode="paste")
    pasted = ui.read_pasted(redirect)
    code = req.accept(parse_pasted(pasted, redirect))
    return Authorization(await exchange_code(req, code, vendor_name), "paste")


async def device_flow(
    app_cfg: OAuthApp,
    *,
    ui: FlowUI,
    vendor_name: str,
    clock: Clock = time.monotonic,
    sleep: Sleep | None = None,
) -> Authorization:
    """RFC 8628. `clock`/`sleep` are injectable: tests drive the timing with a fake clock."""
    import asyncio

    sleep = sleep or asyncio.sleep
    if not app_cfg.device_url:
        raise UsageError(
            f"{vendor_name}'s authorization server offers no device flow.",
            hint="Use the browser flow (default), --no-browser or --paste.",
            code="no_device_flow",
        )
    try:
        body = await token_request(
            app_cfg,
            {"scope": app_cfg.scope_separator.join(app_cfg.scopes)},
            url=app_cfg.device_url,
            what="device authorization endpoint",
        )
    except (ServerError, EndpointError) as exc:
        raise exchange_error(exc, vendor_name, "starting the device flow failed") from None
    device_code, user_code = body.get("device_code"), body.get("user_code")
    # Google-style servers say verification_url.
    uri = body.get("verification_uri") or body.get("verification_url")
    if not all(isinstance(x, str) and x for x in (device_code, user_code, uri)):
        raise Transient(
            "the device authorization endpoint sent an incomplete answer.", code="upstream_unavailable"
        )
    complete = body.get("verification_uri_complete")
    ui.show_device_code(
        clean_text(user_code, 40),
        clean_text(uri, 300),
        clean_text(complete, 400) if isinstance(complete, str) else None,
    )
    interval = _positive(body.get("interval"), 5.0)
    deadline = clock() + _positive(body.get("expires_in"), 900.0)
    network_failures = 0
    with ui.waiting(f"Waiting for you to approve botctl at {vendor_name} (Ctrl-C to cancel)"):
        while True:
            wait = interval if not network_failures else min(60.0, interval * 2**network_failures)
            if clock() + wait >= deadline:
                raise AuthorizationTimeout(
                    "the device code expired before it was approved; nothing was stored.",
                    hint="Run the connect command again.",
                    code="expired_token",
                )
            await sleep(wait)
            try:
                body = await token_request(app_cfg, {"grant_type": DEVICE_GRANT, "device_code": device_code})
            except ServerError as exc:
                network_failures = 0
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    # RFC 8628 §3.5: +5 s "for this and all subsequent requests".
                    interval = max(interval + 5.0, float(exc.interval or 0))
                    continue
                if exc.error == "access_denied":
                    raise AuthorizationDenied(
                        "the authorization was denied; nothing was stored.",
                        hint="Run the connect command again and approve botctl.",
                    ) from None
                if exc.error == "expired_token":
                    raise AuthorizationTimeout(
                        "the device code expired before it was approved; nothing was stored.",
                        hint="Run the connect command again.",
                        code="expired_token",
                    ) from None
                raise exchange_error(exc, vendor_name, "the device flow failed") from None
            except EndpointError as exc:
                if exc.status == 429:
                    interval += 5.0
                network_failures += 1  # back off, keep polling until the code expires
                continue
            try:
                return Authorization(token_set(body), "device")
            except EndpointError as exc:
                raise Transient(
                    f"the device flow failed: {exc.message}.", code="upstream_unavailable"
                ) from None


def _positive(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default
