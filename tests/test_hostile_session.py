"""Hostile review of this session's surfaces (MCP confirmations, audit sinks and alert webhooks, the widget's
votes, knowledge feedback in a terminal): each test is an attack as it was reproduced, kept so it stays fixed;
its docstring says what was wrong."""

from __future__ import annotations

import socket
import threading

from botctl.audit import destinations

# -- audit sinks and alert webhooks: a malicious or broken receiver ------------------------------------------


class _Flood:
    """A loopback 'webhook' that answers 200 and then sends a body of `total` bytes as fast as it is read,
    counting what the client actually took."""

    def __init__(self, total: int) -> None:
        self.total, self.sent = total, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % self.total)
            chunk = b"x" * 65536
            try:
                while self.sent < self.total:
                    self.sent += conn.send(chunk[: self.total - self.sent])
            except OSError:
                pass  # the client hung up: what we measure

    def close(self) -> None:
        self.thread.join(10)
        self.sock.close()


def test_a_webhook_answering_with_an_endless_body_is_not_read(monkeypatch):
    """Finding: destinations.post read the receiver's whole answer into memory (httpx's client.post), so an
    alert webhook or sink answering 200 with gigabytes (or a body that never ends) grew the provider's
    memory on its shipping thread without bound. The status is all botctl needs: the body is never read."""
    monkeypatch.setenv("RT_HOOK_SECRET", "s3cret-for-the-test")
    flood = _Flood(256 * 1024 * 1024)
    try:
        destinations.post(flood.url, b'{"x":1}\n', secret_env="RT_HOOK_SECRET", headers={})
    finally:
        flood.close()
    assert flood.sent < 32 * 1024 * 1024, flood.sent  # socket buffers at most, not the 256 MiB offered
