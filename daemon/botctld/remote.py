"""The edge on its own host: the TLS client context for a remote provider (`--provider https://HOST:PORT`).

Built before the edge confines itself (certificate, key and CA are read once, the host resolved once:
after confinement the edge can read no file and, with Landlock ABI 4+, connect to that one TCP port only).
The context trusts the cluster CA alone (never the system's roots), requires TLS 1.2 or newer, checks that
the provider's certificate carries the provider's name, and presents the edge's client certificate.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit


class RemoteProviderError(ValueError):
    """A --provider URL or certificate file that cannot be used; the message says which and why."""


def client_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cafile=ca)
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise RemoteProviderError(
            f"cannot load the edge's certificate, key or CA ({exc}); "
            "give the files `botctl cluster cert issue NAME` wrote"
        ) from None
    return ctx


def resolve(url: str) -> tuple[str, int]:
    """(IP address, port) of `https://HOST:PORT`, resolved now (after confinement /etc/hosts is unreadable)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.port is None or parts.path not in ("", "/"):
        raise RemoteProviderError(
            f"--provider {url!r}: expected https://HOST:PORT (the provider's --provider-listen address)"
        )
    try:
        info = socket.getaddrinfo(parts.hostname, parts.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise RemoteProviderError(f"--provider {url!r}: cannot resolve {parts.hostname} ({exc})") from None
    return info[0][4][0], parts.port


def target(address: str, port: int) -> str:
    return f"https://[{address}]:{port}" if ":" in address else f"https://{address}:{port}"
