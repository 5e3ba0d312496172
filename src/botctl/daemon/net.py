"""Small, dependency-free probes the supervisor and the CLI use: is a port free, is the edge listening,
what does the provider answer on its socket (HTTP/1.1 by hand: the supervisor stays light)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> bool:
    """Whether host:port accepts TCP connections (the edge is up once it does)."""
    import ipaddress

    try:  # a wildcard bind address is reached through loopback
        wildcard = host == "" or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    target = ("::1" if ":" in host else "127.0.0.1") if wildcard else host
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def _uds_get(sock: Path, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """A tiny HTTP/1.1 GET over the Unix socket (no httpx: the supervisor stays light)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: provider\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
    except OSError:
        return None
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    try:
        return json.loads(body)
    except ValueError:
        return None


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return out


# -- commands ---------------------------------------------------------------------------------------


def _http_ok(host: str, port: int, path: str) -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection(host, port, timeout=1.0)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False
