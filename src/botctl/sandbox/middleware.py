"""Pure ASGI middleware in front of every vendor route: request ids, rate-limit headers, stats, faults.

Faults are decided here, before the vendor app runs, so a faulted write is never applied: a client
that retries it can then be checked for duplicated writes. The exceptions are `rotate_then_fail`,
`write_then_reset` and `write_then_hang`, which run the request for real and then lose its answer (a 500,
a dropped connection, or one held like `hang` first): the write happened, the client cannot know; and
`write_then_delay`, which runs it for real and sends its answer `hang_seconds` late.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .state import APPLY_THEN_FAULT
from .vendors.base import CATCH_ALL, Vendor

if TYPE_CHECKING:
    from starlette.routing import Route  # noqa: TID253
    from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: TID253

    from .state import Fault, SandboxState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def route_template(routes: Iterable[Route], method: str, path: str) -> str:
    """The route a vendor path matched, as "METHOD /template" (stats), the catch-all left out."""
    for route in routes:
        if route.name == CATCH_ALL:
            continue
        if route.path_regex.match(path) and (route.methods is None or method in route.methods):
            return f"{method} {route.path_format}"
    return f"{method} (unmatched)"


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    def _resolve(self, path: str) -> tuple[Vendor, str | None, str] | None:
        first = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        vendor = self.state.vendors.get(first)
        if vendor is None:
            return None
        split = vendor.split(path)
        if split is None:
            return None
        return vendor, split[0], split[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        resolved = self._resolve(scope["path"])
        if resolved is None:
            await self.app(scope, receive, send)
            return
        vendor, tenant, vendor_path = resolved
        method = scope["method"]
        request_id = vendor.new_request_id()
        used, reset_in = self.state.stats.hit_window(vendor.name, tenant)
        extra = {vendor.request_id_header: request_id, **vendor.rate_limit_headers(used, reset_in)}
        status: dict[str, int] = {}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                present = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                for name, value in extra.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        scope["sandbox.request_id"] = request_id
        fault = self.state.faults.take(vendor.name, method, scope["path"])
        try:
            if fault is None:
                await self.app(scope, receive, send_with_headers)
            else:
                await self._inject(fault, vendor, scope, receive, send_with_headers, send, vendor_path)
        finally:
            self.state.stats.record(
                vendor=vendor.name,
                tenant=tenant,
                method=method,
                path=scope["path"],
                route=route_template(self.state.routes.get(vendor.name, ()), method, vendor_path),
                status=status.get("code"),
                fault=fault.kind if fault else None,
                request_id=request_id,
            )

    async def _inject(
        self,
        fault: Fault,
        vendor: Vendor,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw_send: Send,
        vendor_path: str,
    ) -> None:
        kind = fault.kind
        if kind == "write_then_delay":
            held: list[Message] = []

            async def keep(message: Message) -> None:
                held.append(message)

            await self.app(scope, receive, keep)
            await self._hang(fault.hang_seconds, receive)
            for message in held:
                await send(message)
            return
        if kind in APPLY_THEN_FAULT:
            await self.app(scope, receive, _discard)
            if kind == "write_then_hang":
                await self._hang(fault.hang_seconds, receive)
            if kind in ("write_then_reset", "write_then_hang"):
                await _abort(receive, raw_send)
                return
            reply = vendor.fault("500", 500, vendor_path)
            await _send_bytes(send, reply.status, dict(reply.headers), reply.body)
            return
        if kind == "reset":
            await _drain(receive)
            await _abort(receive, raw_send)
            return
        if kind == "hang":
            await _drain(receive)
            await self._hang(fault.hang_seconds, receive)
            await _abort(receive, raw_send)
            return
        if kind == "malformed_json":
            await self._malformed(vendor, scope, receive, send)
            return
        await _drain(receive)
        if kind == "throttled" and not vendor.throttles_in_body:
            kind = "429"
        reply = vendor.fault(kind, 429 if kind in ("429", "throttled") else int(kind), vendor_path)
        headers = dict(reply.headers)
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        await _send_bytes(send, reply.status, headers, reply.body)

    async def _hang(self, seconds: float, receive: Receive) -> None:
        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiters = [
            asyncio.ensure_future(self.state.shutting_down.wait()),
            asyncio.ensure_future(client_gone()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            for w in waiters:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await w

    async def _malformed(self, vendor: Vendor, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in SAFE_METHODS:
            # A read has no side effect: serve the real answer, cut in half.
            captured: dict[str, Any] = {"headers": [], "body": b""}

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    captured["headers"] = [
                        (k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"
                    ]
                elif message["type"] == "http.response.body":
                    captured["body"] += message.get("body", b"")

            await self.app(scope, receive, capture)
            body = captured["body"]
            body = body[: max(1, len(body) // 2)] if len(body) > 2 else b'{"'
            headers = {k.decode(): v.decode() for k, v in captured["headers"]}
            headers["content-type"] = "application/json; charset=utf-8"
            await _send_bytes(send, 200, headers, body)
            return
        await _drain(receive)
        await _send_bytes(send, 200, {"content-type": "application/json; charset=utf-8"}, b'{"id": 1, "stat')


async def _discard(message: Message) -> None:
    """A `send` that loses the response (the request itself was applied)."""


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _send_bytes(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower() != "content-length"]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _abort(receive: Receive, raw_send: Send) -> None:
    """Drop the TCP connection without a response (the client sees a reset).

    ASGI has no "abort" message. uvicorn's `send` is a bound method of its request cycle, which
    holds the transport: close that with SO_LINGER 0 so the kernel sends RST. On a server where the
    transport can't be found, start a response and leave it incomplete, which the client also sees
    as a broken connection.
    """
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # ValueError: the client already went away (a hang it gave up on), the descriptor is gone.
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # Let the server notice the lost connection, so it neither logs "returned without
        # starting response" nor tries to send a 500.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_until_disconnect(receive), timeout=1.0)
        return
    await raw_send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    await raw_send({"type": "http.response.body", "body": b"{", "more_body": True})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
