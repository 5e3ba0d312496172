"""Where shipped lines go: a file, a syslog server (UDP, TCP, or the local /dev/log), an HTTPS webhook.
Each `send` delivers a batch of lines or raises `DeliveryFailed`; it never retries (the shipper does).

Webhook requests are signed: `X-Botctl-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`
with the secret read from the environment variable the operator named (docs/alerts.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from botctl.errors import UsageError

SYSLOG_DEFAULT = "/dev/log"
USER_AGENT = "botctl-shipper"
TIMEOUT_S = 10.0  # each connect, read or write
DEADLINE_S = 30.0  # one webhook exchange in all


class DeliveryFailed(Exception):
    """A batch did not reach its destination (the message says why, without secrets)."""


def check_webhook_url(url: str, flag: str = "URL") -> str:
    """https://…, or http:// to a loopback address only; no credentials in the URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts, host = None, None
    hint = "Use an https:// URL (http:// only to 127.0.0.1, ::1 or localhost); put secrets in --secret-env."
    if parts is None or parts.scheme not in ("https", "http") or not host:
        raise UsageError(f"{flag} {url!r} is not an http(s) URL.", hint=hint)
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"{flag} {url!r} carries credentials; they would be stored in plain text.", hint=hint
        )
    from urllib.parse import parse_qsl

    from botctl.audit.records import _SECRET_KEY

    if any(_SECRET_KEY.search(k) for k, _ in parse_qsl(parts.query, keep_blank_values=True)):
        raise UsageError(
            f"{flag} carries a secret-looking query parameter; it would be stored in plain text.",
            hint="Drop it: the receiver authenticates the X-Botctl-Signature made with --secret-env.",
        )
    if parts.scheme == "http" and not _loopback(host):
        raise UsageError(
            f"{flag} {url!r} is plain http to a host that is not loopback: records and alerts "
            "would cross the network unencrypted.",
            hint=hint,
        )
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """What may be shown and recorded: scheme, host, port and path (a query may carry a token)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}" + ("?…" if p.query else "")


def parse_server(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--server {text!r} is not HOST:PORT.", hint="e.g. --server 127.0.0.1:514 or [::1]:6514"
        )
    return host, int(port)


def sign(secret: bytes, body: bytes, now: float | None = None) -> str:
    t = int(now if now is not None else time.time())
    mac = hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def env_secret(name: str) -> bytes:
    value = os.environ.get(name)
    if not value:
        raise DeliveryFailed(
            f"the environment variable {name} (the signing secret) is not set in this process"
        )
    return value.encode()


def post(url: str, body: bytes, *, secret_env: str, headers: dict[str, str]) -> None:
    """One signed POST, answered 2xx within DEADLINE_S in all, or DeliveryFailed. The answer's body is never
    read (a receiver sending an endless one must not grow this process's memory), and the deadline covers
    the whole exchange: a receiver that sends its answer a byte at a time, each within the per-read timeout,
    would otherwise hold the shipping thread (every sink and every alert behind it) for hours."""
    import http.client
    import ssl
    import threading

    secret = env_secret(secret_env)
    all_headers = {"User-Agent": USER_AGENT, "X-Botctl-Signature": sign(secret, body), **headers}
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port or 443, timeout=TIMEOUT_S, context=ssl.create_default_context()
        )
    else:  # the port always given: http.client would read one from an IPv6 address's last group
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=TIMEOUT_S)

    late = threading.Event()

    def cut() -> None:
        late.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read or write at once

    timer = threading.Timer(DEADLINE_S, cut)
    timer.daemon = True
    timer.start()
    try:
        conn.request("POST", target, body=body, headers=all_headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        status, why = 0, type(exc).__name__
    else:
        why = None
    finally:
        timer.cancel()
        conn.close()
    if late.is_set():  # cut short: whatever was parsed from a closed stream is not an answer
        raise DeliveryFailed(f"{redact_url(url)}: no answer within {DEADLINE_S:g} s")
    if why is not None:
        raise DeliveryFailed(f"{redact_url(url)}: {why}")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"{redact_url(url)} answered {status}")


def send(
    kind: str, target: str, options: dict[str, Any], lines: list[str], *, first_seq: int, last_seq: int
) -> None:
    if kind == "file":
        _to_file(target, lines)
    elif kind == "syslog":
        _to_syslog(target, options.get("protocol", "udp"), lines)
    elif kind == "webhook":
        body = ("\n".join(lines) + "\n").encode()
        post(
            target,
            body,
            secret_env=options["secret_env"],
            headers={
                "Content-Type": "application/x-ndjson",
                "X-Botctl-Event": "audit.records",
                "X-Botctl-Records": f"{first_seq}-{last_seq}",
            },
        )
    else:
        raise DeliveryFailed(f"unknown sink kind {kind!r}")


def _to_file(path: str, lines: list[str]) -> None:
    data = ("\n".join(lines) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DeliveryFailed(f"{path}: {exc.strerror or type(exc).__name__}") from None


def syslog_message(line: str, *, pid: int | None = None, hostname: str | None = None) -> bytes:
    """RFC 5424: facility local0 (16), severity informational (6), app `botctl`, msgid `audit`."""
    from datetime import UTC, datetime

    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    host = (hostname or socket.gethostname() or "-")[:255]
    return f"<134>1 {ts} {host} botctl {pid or os.getpid()} audit - {line}".encode()


UDP_MAX = 60000
_SUFFIX = len(',"prev_hash":"","hash":""}') + 128


def _fit_datagram(line: str) -> str:
    """A record too long for one datagram keeps its seq and chain hashes, and says how much was left out."""
    if len(line.encode()) <= UDP_MAX or not line.startswith('{"seq":'):
        return line
    return line[: line.index(",")] + f',"omitted_bytes":{len(line.encode())}' + line[-_SUFFIX:]


def _to_syslog(target: str, protocol: str, lines: list[str]) -> None:
    if protocol != "tcp":
        lines = [_fit_datagram(line) for line in lines]
    msgs = [syslog_message(line) for line in lines]
    try:
        if target.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.settimeout(TIMEOUT_S)
                s.connect(target)
                for m in msgs:
                    s.send(m)
            return
        host, port = parse_server(target)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if protocol == "tcp":
            with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
                # RFC 6587 octet counting: "<length> <message>", so a record may hold any byte.
                s.sendall(b"".join(b"%d %s" % (len(m), m) for m in msgs))
        else:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(TIMEOUT_S)
                s.connect((host, port))
                for m in msgs:
                    s.send(m)
    except OSError as exc:
        raise DeliveryFailed(f"syslog {target} ({protocol}): {exc.strerror or type(exc).__name__}") from None
