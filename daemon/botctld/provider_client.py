"""The edge's client for the provider: JSON over HTTP/1.1 on the provider's Unix socket, kept alive.

Or, for an edge on another host, over TCP with mutual TLS (`https://HOST:PORT` and an ssl context that
trusts only the cluster CA, checks the provider's name and presents the edge's client certificate).

The edge asks one thing of the provider ("here is a request, give me {status, body}"), over a socket
only the two of them share. A general-purpose client (httpx: redirects, auth flows, cookies, URL
models, stream wrappers) cost about 1.5 ms of the edge's CPU per action on this path, most of the
edge's own work; this client writes the request and reads a Content-Length (or chunked) answer, and
keeps idle connections for the next call.

Never replays a request: if a connection breaks after a request was written, the provider may have
acted on it (an action is a vendor write), so the caller gets ProviderError and the visitor a 503.
Connections that the provider closed while idle are noticed (EOF) and dropped before use.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024


class ProviderError(Exception):
    """No usable answer from the provider: not listening, restarting, died mid-answer, timed out, or
    answered something that is not an HTTP/1.1 JSON response."""


class ProviderClient:
    def __init__(
        self,
        socket_path: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 2.0,
        max_idle: int = 64,
        ssl_context: Any = None,
        server_name: str = "provider",
    ) -> None:
        self.socket_path = socket_path
        self.ssl_context = (
            ssl_context  # set: socket_path is https://HOST:PORT (a remote provider, mutual TLS)
        )
        self.server_name = server_name  # the name the provider's certificate must carry
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()  # closed by the provider while idle (keep-alive timeout, restart)
                continue
            return reader, writer
        for attempt in (1, 2):  # once more at once, like httpx's connect retry: nothing was sent yet
            try:
                async with asyncio.timeout(self.connect_timeout):
                    if self.ssl_context is not None:
                        host, _, port = self.socket_path.removeprefix("https://").rstrip("/").rpartition(":")
                        return await asyncio.open_connection(
                            host.strip("[]"),
                            int(port),
                            limit=MAX_HEAD,
                            ssl=self.ssl_context,
                            server_hostname=self.server_name,
                        )
                    return await asyncio.open_unix_connection(self.socket_path, limit=MAX_HEAD)
            except (OSError, TimeoutError) as exc:  # ssl.SSLError (a provider not of our CA) is an OSError
                if attempt == 2:
                    raise ProviderError(f"cannot reach the provider ({type(exc).__name__})") from None
        raise AssertionError("unreachable")

    async def request(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """(HTTP status, parsed JSON body)."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: provider\r\nAccept: application/json\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        reader, writer = await self._connect()
        reusable = False
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(head + body)
                await writer.drain()
                status, raw, reusable = await _read_response(reader)
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ) as exc:
            raise ProviderError(f"no answer from the provider ({type(exc).__name__})") from None
        finally:
            if reusable and len(self._idle) < self.max_idle:
                self._idle.append((reader, writer))
            else:
                writer.close()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            raise ProviderError("the provider's answer is not JSON") from None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if version != "HTTP/1.1" or not rest[:3].isdigit():
        raise ValueError("not an HTTP/1.1 response")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close"
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts, total = [], 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            total += size
            if total > MAX_BODY:
                raise ValueError("answer too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts), keep
    if "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise ValueError("answer too large")
        return status, await reader.readexactly(length), keep
    return status, await reader.read(MAX_BODY), False  # delimited by close
