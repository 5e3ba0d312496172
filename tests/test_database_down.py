"""PostgreSQL unreachable under a running node (issue #15): actions fail closed. The node reaches the real
server through a TCP relay the test cuts and restores; nothing of the vendor is called while it is cut."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest

from botctl import crypto
from cluster_kit import free_port, sh

pytestmark = pytest.mark.slow


class Relay:
    """127.0.0.1:port → 127.0.0.1:5432, byte for byte; `cut()` drops every connection and refuses new ones."""

    def __init__(self) -> None:
        self.port = free_port()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = None
        self.start()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 5432))
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._socks.clear()


def test_actions_fail_closed_while_postgresql_is_unreachable(pg_url, sandbox, tmp_path):
    relay = Relay()
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    env = {
        **os.environ,
        "BOTCTL_HOME": str(tmp_path / "node"),
        "BOTCTL_NO_KEYRING": "1",
        "BOTCTL_MASTER_KEY": base64.b64encode(crypto.new_key()).decode(),
    }
    env.pop("BOTCTL_DATABASE_URL", None)
    sh(env, "init", "--database", url, "--node", "node-1")
    sh(env, "workspace", "create", "acme", "--plan", "pro")
    rot = json.loads(sh(env, "identity", "rotate", "-w", "acme", "--json").stdout)
    sh(
        env,
        "connect",
        "zendesk",
        "-w",
        "acme",
        "--sandbox",
        sandbox.url,
        "--subdomain",
        "acme",
        "--access-token-stdin",
        input=sandbox.credentials()["zendesk"]["access_token"] + "\n",
    )
    sh(env, "knowledge", "add", "-w", "acme", str(Path(__file__).parent / "data" / "knowledge"))
    port = free_port()
    sh(env, "daemon", "start", "--port", str(port), "--metrics-port", str(free_port()))
    now = int(time.time())
    tok = jwt.encode(
        {"sub": "u-ada", "email": "ada@example.com", "aud": "acme", "iat": now, "exp": now + 600},
        rot["secret"],
        algorithm="HS256",
        headers={"kid": rot["kid"]},
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)

    def act(action: str, params: dict | None = None) -> httpx.Response:
        return http.post(
            f"/v1/workspaces/acme/actions/{action}",
            json={"params": params or {}},
            headers={"Authorization": f"Bearer {tok}"},
        )

    def ask() -> httpx.Response:
        return http.post(
            "/v1/workspaces/acme/chat", json={"message": "How long does standard shipping take?"}
        )

    try:
        assert act("zendesk.list_my_tickets").status_code == 200
        first = ask().json()
        assert first["grounded"] is True, first
        vendor_before = sandbox.stats()["vendors"]["zendesk"]["requests"]
        relay.cut()
        # A question too (the provider's answers thread has a connection of its own): refused cleanly.
        r = ask()
        assert r.status_code == 503 and r.json()["error"]["code"] == "provider_unavailable", r.text
        assert "postgres" not in r.text.lower() and "Traceback" not in r.text
        for action, params in (
            ("zendesk.list_my_tickets", {}),
            ("zendesk.create_ticket", {"subject": "Down?", "description": "db cut"}),
        ):
            r = act(action, params)
            assert r.status_code == 503 and r.json()["error"]["code"] == "provider_unavailable", r.text
            assert "postgres" not in r.text.lower() and "Traceback" not in r.text
        assert (
            sandbox.stats()["vendors"]["zendesk"]["requests"] == vendor_before
        )  # nothing reached the vendor
        relay.start()
        deadline = time.time() + 60
        while (r := act("zendesk.list_my_tickets")).status_code != 200:
            assert time.time() < deadline, f"not serving again once PostgreSQL is back: {r.text}"
            time.sleep(1)
        assert ask().json()["grounded"] is True  # the fresh provider's answers thread, connected anew
        assert sh(env, "audit", "verify").returncode == 0
    finally:
        sh(env, "daemon", "stop", check=False)
        http.close()
        relay.cut()
