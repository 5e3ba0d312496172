"""`serve()` runs in the foreground and stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_and_stops_on_sigint_even_with_a_hanging_request():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from botctl.sandbox.server import serve; serve(port={port}, log_level='warning')",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(url + "/_sandbox/credentials", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.1)
        creds = httpx.get(url + "/_sandbox/credentials").json()
        httpx.post(url + "/_sandbox/faults", json={"vendor": "stripe", "kind": "hang"})
        client = httpx.Client(timeout=30)
        # Start a request that will hang, without waiting for it.
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"GET /stripe/v1/balance HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + creds["stripe"]["api_key"].encode()
            + b"\r\n\r\n"
        )
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert time.monotonic() - started < 6
        assert proc.returncode != 0  # KeyboardInterrupt re-raised after a clean shutdown
        sock.close()
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
