"""The provider's second listener: TCP with mutual TLS, for an edge on another host.

The same app as on the Unix socket (the edge's documented routes, nothing more) behind:
- TLS 1.2 or newer, the server certificate `cluster/certs/provider.crt` issued by the cluster CA;
- a client certificate required (CERT_REQUIRED) that chains to the cluster CA and is within its
  validity (OpenSSL's verification), and
- whose SHA-256 fingerprint is in `cluster/allowed.json` (`botctl cluster cert issue|revoke`), checked
  when the handshake completes, before a byte of HTTP is read, and again whenever bytes arrive on a
  kept-alive connection: a revoked edge's connection is aborted and it gets no answer at all, even on
  a connection opened before the revocation. The allow-list is re-read when its file changes (a stat).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from pathlib import Path
from typing import Any

log = logging.getLogger("botctl.provider")


class AllowList:
    """The fingerprints in allowed.json, re-read when the file's mtime or size changes (one stat a connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._fingerprints: frozenset[str] = frozenset()

    def allows(self, fingerprint: str) -> bool:
        import json

        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                data = json.loads(self.path.read_text())
                self._fingerprints = frozenset(data) if isinstance(data, dict) else frozenset()
                self._stamp = stamp
        except (OSError, ValueError):
            self._fingerprints, self._stamp = frozenset(), None  # unreadable: nobody is allowed
        return fingerprint in self._fingerprints


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


def protocol_class(allowed: AllowList) -> type:
    """uvicorn's HTTP protocol, refusing a connection whose client certificate is not on the allow-list."""
    import hashlib

    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    base = import_from_string(HTTP_PROTOCOLS["auto"])

    class AllowListedProtocol(base):  # type: ignore[misc, valid-type]
        _fingerprint = ""

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            self._fingerprint = hashlib.sha256(der).hexdigest() if der else ""
            self._check(transport)

        def data_received(self, data: bytes) -> None:
            if self._check(self.transport):
                super().data_received(data)

        def _check(self, transport: Any) -> bool:
            if self._fingerprint and allowed.allows(self._fingerprint):
                return True
            if not transport.is_closing():
                peer = transport.get_extra_info("peername")
                log.warning(
                    "refused an edge connection from %s: client certificate not on the allow-list",
                    peer[0] if peer else "?",
                )
                transport.abort()
            return False

    return AllowListedProtocol


def tls_server(app: Any, home: str, listen: str) -> Any:
    """A uvicorn.Server for `HOST:PORT` (lifespan off: the Unix-socket server runs the app's lifespan)."""
    import uvicorn

    from botctl.cluster import pki

    host, _, port = listen.rpartition(":")
    cert, key, ca = pki.server_files(Path(home))
    context = server_context(cert, key, ca)
    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=int(port),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
        http=protocol_class(AllowList(pki.allowed_path(Path(home)))),
        ssl_context_factory=lambda _config, _default: context,
    )

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield  # the Unix-socket server owns the signals; this one stops when that one has

    return Server(config)


async def serve_both(uds_server: Any, tcp_server: Any) -> None:
    """Run the Unix-socket server, then (once the app has started) the TLS one; stop both together."""
    import asyncio

    uds = asyncio.create_task(uds_server.serve())
    while not uds_server.started and not uds.done():
        await asyncio.sleep(0.02)
    tcp = asyncio.create_task(tcp_server.serve())
    done, _ = await asyncio.wait({uds, tcp}, return_when=asyncio.FIRST_COMPLETED)
    uds_server.should_exit = tcp_server.should_exit = True
    await asyncio.gather(uds, tcp, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
