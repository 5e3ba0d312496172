"""The edge's HTTP/1.1 protocol: uvicorn's httptools protocol plus the limits it does not have.

uvicorn with httptools bounds neither the request head (a 60 MB header is buffered whole, per
connection) nor the time a client may take to send it (an idle or byte-by-byte connection holds a
slot forever, and `limit_concurrency` of them turn every other visitor away). Per connection, this
subclass adds:

* the head (request line + headers) at most MAX_HEAD bytes and MAX_HEADERS fields → 431
  `headers_too_large`; the URL at most MAX_URL bytes → 414 `uri_too_long`; the connection is closed;
* the head must be complete HEAD_TIMEOUT s after the connection opens (or after the first byte of the
  next request on a kept-alive connection), the body BODY_TIMEOUT s after its head: else the
  connection is closed (the handler reading the body sees a disconnect);
* a request the parser rejects gets the edge's JSON error envelope (400 `invalid_request`) rather
  than uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD = 32 * 1024
MAX_HEADERS = 100
MAX_URL = 8 * 1024
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 15.0
_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer is in the protocol's `_refusal`."""


class EdgeProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusal: tuple[int, str, str] | None = None
        self._head_pending = True  # the next bytes from the client belong to a request head
        self._head_bytes = 0  # bytes received while a head is incomplete (bounds what the parser buffers)
        self._head_size = 0  # the current head's size as parsed: request target + header fields
        self._fields = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # -- connection ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        if self._head_pending:
            self._head_bytes += len(data)
            self._arm_head()
        super().data_received(data)
        # Checked after parsing: a chunk that completes the head (and carries body bytes) is fine; what
        # the parser buffers is bounded by MAX_HEAD plus one read.
        if self._refusal is None and self._head_pending and self._head_bytes > MAX_HEAD:
            self._refuse(431, "headers_too_large", f"The request headers are over {MAX_HEAD // 1024} KiB.")

    # -- parser callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._fields = self._head_size = 0
        self._arm_head()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)
        if len(self.url) > MAX_URL:
            self._refusal = (414, "uri_too_long", f"The URL is over {MAX_URL // 1024} KiB.")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._head_size += len(name) + len(value) + 4
        if self._fields > MAX_HEADERS:
            self._refusal = (431, "headers_too_large", f"The request has over {MAX_HEADERS} header fields.")
            raise _Refused
        if self._head_size > MAX_HEAD:
            self._refusal = (
                431,
                "headers_too_large",
                f"The request headers are over {MAX_HEAD // 1024} KiB.",
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_pending, self._head_bytes = False, 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._body_timer = self.loop.call_later(BODY_TIMEOUT, self._timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._head_pending, self._head_bytes = True, 0
        super().on_message_complete()

    # -- refusals -----------------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to anything the parser rejects (including a callback's `_Refused`)."""
        status, code, message = self._refusal or (400, "invalid_request", "The request is not valid HTTP.")
        self._refuse(status, code, message)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refusal = (status, code, message)
        self._cancel_timers()
        if self.transport.is_closing():
            return
        rid = "req_" + uuid.uuid4().hex[:16]
        body = json.dumps({"error": {"code": code, "message": message}, "request_id": rid}).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: " + rid.encode() + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # -- deadlines ----------------------------------------------------------------------------------

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._timed_out)

    def _timed_out(self) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
