"""The edge's provider client against a real uvicorn server on a Unix socket: keep-alive reuse, a provider
that closed idle connections or restarted, a provider that dies mid-answer (never replayed), timeouts,
chunked answers."""

import asyncio
import socket
import threading
import time

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from botctld.provider_client import ProviderClient, ProviderError


class Server:
    def __init__(self, path: str, keep_alive: int = 5) -> None:
        self.path, self.calls = path, []

        async def echo(request):
            body = await request.body()
            self.calls.append((request.method, request.url.path, body))
            return JSONResponse({"status": 200, "body": {"path": request.url.path, "got": body.decode()}})

        async def slow(request):
            self.calls.append(("POST", "/slow", b""))
            await asyncio.sleep(5)
            return JSONResponse({})

        async def chunked(request):
            async def gen():
                yield b'{"status": 200, '
                yield b'"body": {"chunked": true}}'

            return StreamingResponse(gen(), media_type="application/json")

        app = Starlette(
            routes=[
                Route("/slow", slow, methods=["POST"]),
                Route("/chunked", chunked),
                Route("/{p:path}", echo, methods=["GET", "POST"]),
            ]
        )
        self.server = uvicorn.Server(
            uvicorn.Config(app, uds=path, log_level="warning", timeout_keep_alive=keep_alive, lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def sock(tmp_path):
    return str(tmp_path / "p.sock")


def test_round_trip_and_keep_alive(sock):
    srv = Server(sock)

    async def go():
        c = ProviderClient(sock)
        a = await c.request("POST", "/v1/x", {"params": {"a": "é"}})
        b = await c.request("GET", "/health")
        assert len(c._idle) == 1  # one connection, reused
        await c.aclose()
        return a, b

    try:
        (s1, a), (s2, b) = asyncio.run(go())
    finally:
        srv.stop()
    assert s1 == 200 and a["body"] == {"path": "/v1/x", "got": '{"params":{"a":"\\u00e9"}}'}
    assert s2 == 200 and b["body"]["path"] == "/health"


def test_idle_connection_closed_by_the_provider_is_not_used(sock):
    srv = Server(sock, keep_alive=1)

    async def go():
        c = ProviderClient(sock)
        await c.request("GET", "/a")
        await asyncio.sleep(1.6)  # uvicorn closes the idle keep-alive connection
        status, _ = await c.request("POST", "/b", {"x": 1})
        await c.aclose()
        return status

    try:
        assert asyncio.run(go()) == 200
    finally:
        srv.stop()
    assert [c[1] for c in srv.calls] == ["/a", "/b"]


def test_provider_restart_between_calls(sock):
    srv = Server(sock)

    async def go():
        nonlocal srv
        c = ProviderClient(sock)
        await c.request("GET", "/a")
        srv.stop()
        with pytest.raises(ProviderError):
            await c.request("GET", "/down")
        srv = Server(sock)
        status, _ = await c.request("GET", "/up")
        await c.aclose()
        return status

    try:
        assert asyncio.run(go()) == 200
    finally:
        srv.stop()


def test_timeout_and_no_replay(sock):
    srv = Server(sock)

    async def go():
        c = ProviderClient(sock, timeout=0.5)
        with pytest.raises(ProviderError, match="TimeoutError"):
            await c.request("POST", "/slow", {})
        assert c._idle == []  # a connection with a request in flight is never reused
        await c.aclose()

    try:
        asyncio.run(go())
    finally:
        srv.stop()
    assert [c[1] for c in srv.calls] == ["/slow"]  # sent once, never replayed


def test_chunked_answer(sock):
    srv = Server(sock)
    try:
        status, body = asyncio.run(ProviderClient(sock).request("GET", "/chunked"))
    finally:
        srv.stop()
    assert status == 200 and body == {"status": 200, "body": {"chunked": True}}


def test_garbage_and_truncated_answers(sock):
    """Something that is not the provider on the socket: a clear ProviderError, never a hang."""
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(sock)
    lsock.listen()
    answers = [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a"',
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",
    ]

    def serve():
        for answer in answers:
            conn, _ = lsock.accept()
            conn.recv(65536)
            conn.sendall(answer)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()

    async def go():
        c = ProviderClient(sock, timeout=2)
        for _ in answers:
            with pytest.raises(ProviderError):
                await c.request("GET", "/x")

    try:
        asyncio.run(go())
    finally:
        lsock.close()
