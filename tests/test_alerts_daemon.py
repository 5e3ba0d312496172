"""Alerts and sinks with the real daemon: the provider ships records to a file sink as they are written
(no flush), and signed webhooks arrive for a connection that falls to needs_reauth, a provider restart
and a chain broken under the running provider (which used to keep going and say nothing)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlite_utils

from cluster_kit import free_port, sh
from test_audit_sinks import _Hook
from test_daemon import _setup_home

pytestmark = pytest.mark.slow
SECRET = "alert-secret-for-the-daemon-test"


class _Receiver:
    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.bad = 0
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sig = dict(p.split("=", 1) for p in self.headers["X-Botctl-Signature"].split(","))
                want = hmac.new(SECRET.encode(), sig["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, sig["v1"]) or abs(time.time() - int(sig["t"])) > 300:
                    rx.bad += 1
                    self.send_response(401)
                else:
                    alert = json.loads(body)
                    assert self.headers["X-Botctl-Event"] == alert["type"]
                    rx.alerts.append(alert)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, type_: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for a in self.alerts:
                if a["type"] == type_:
                    return a
            time.sleep(0.1)
        raise AssertionError(f"no {type_} alert; got {[a['type'] for a in self.alerts]}")


def _wait(predicate, timeout: float = 15.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_daemon_ships_and_alerts(sandbox_server, tmp_path, monkeypatch):
    sandbox_server.reset()
    monkeypatch.setenv("BOTCTL_ALERT_SECRET", SECRET)  # the daemon inherits it: the secret never touches argv
    monkeypatch.setenv("BOTCTL_AUDIT_VERIFY_EVERY_S", "1")  # the provider walks the whole chain every second
    rx = _Receiver()
    d = _setup_home(tmp_path, sandbox_server, port=free_port())
    try:
        sink = tmp_path / "offsite.ndjson"
        sh(d.env, "audit", "sink", "add", "file", str(sink))
        sh(d.env, "alert", "add", rx.url, "--secret-env", "BOTCTL_ALERT_SECRET")
        collector = _Hook(SECRET.encode())  # a webhook sink that is down at first
        collector.up = False
        sh(d.env, "audit", "sink", "add", "webhook", collector.url, "--secret-env", "BOTCTL_ALERT_SECRET")

        # 1. Records reach the sink as they are committed: no flush, the provider's shipper.
        r = d.act("zendesk.list_my_tickets", token=d.token())
        assert r.status_code == 200
        rid = r.headers["X-Request-Id"]

        def shipped():
            lines = sink.read_text().split("\n") if sink.exists() else []
            return [json.loads(x) for x in lines if x.startswith('{"seq":') and rid in x]

        rec = _wait(shipped)[0]
        assert (
            rec["action"] == "zendesk.list_my_tickets" and rec["outcome"] == "ok" and len(rec["hash"]) == 64
        )

        # 1b. The webhook sink was down: the provider retried with backoff, kept the backlog (reported), and
        # delivers all of it, in order, once the collector is up: no flush, no lost or repeated record.
        st = json.loads(sh(d.env, "daemon", "status", "--json").stdout)
        down = [s for s in st["audit_sinks"] if s["kind"] == "webhook"][0]
        assert down["delivered_seq"] == 0 and down["backlog"] >= rec["seq"] and down["failures"] >= 1
        collector.up = True

        def collected():
            got = [
                json.loads(x)
                for _, body in collector.bodies
                for x in body.decode().split("\n")
                if x.startswith('{"seq":')
            ]
            return got if got and got[-1]["seq"] >= rec["seq"] else None

        got = _wait(collected, timeout=30)
        assert [r["seq"] for r in got] == list(range(1, len(got) + 1)) and collector.bad_signatures == 0
        collector.close()

        # 2. The vendor refuses the token: the connection falls to needs_reauth, and the webhook says so.
        assert sandbox_server.revoke_token(sandbox_server.credentials()["zendesk"]["access_token"])
        assert d.act("zendesk.list_my_tickets", token=d.token()).status_code != 200
        alert = rx.wait_for("connection.needs_reauth")
        assert alert["data"]["workspace"] == "acme" and alert["data"]["connector"] == "zendesk"
        assert alert["data"]["reconnect"] == "botctl connect zendesk -w acme" and alert["id"].startswith(
            "alt_"
        )
        st = json.loads(sh(d.env, "daemon", "status", "--json").stdout)
        assert {"workspace": "acme", "connector": "zendesk"}.items() <= st["connections_needing_reauth"][
            0
        ].items()

        # 3. The provider dies: the supervisor restarts it and the alert arrives.
        pid = d.state()["provider"]["pid"]
        os.kill(pid, signal.SIGKILL)
        alert = rx.wait_for("provider.restarted", timeout=30)
        assert alert["data"]["restarts"] >= 1 and alert["data"]["exit_code"] == -signal.SIGKILL
        st = json.loads(sh(d.env, "daemon", "status", "--json").stdout)
        assert [e["type"] for e in st["recent_alerts"]] == ["provider.restarted"]

        # 4. An old record is edited under an intact head: every write's head check passes, so only the
        # provider's walk of the whole chain can see it; it alerts (writes go on: the head is sound).
        _wait(lambda: d.http.get("/readyz").status_code == 200)
        db = sqlite_utils.Database(d.home / "audit.db")
        body = json.loads(db.execute("SELECT body FROM records WHERE seq = 3").fetchone()[0])
        body["outcome"] = "denied"
        db.execute("UPDATE records SET body = ? WHERE seq = 3", [json.dumps(body, sort_keys=True)])
        db.conn.commit()
        alert = rx.wait_for("audit.chain_broken")
        assert alert["data"]["kind"] == "verify_failed" and alert["data"]["first_bad_seq"] == 3
        st = json.loads(sh(d.env, "daemon", "status", "--json").stdout)
        assert (
            st["audit_chain"]["last_verify"]["ok"] is False
            and st["audit_chain"]["last_verify"]["first_bad_seq"] == 3
        )

        # 5. The tail of the log is deleted under the running provider: alerted within seconds, no write.
        head = (
            sqlite_utils.Database(d.home / "audit.db").execute("SELECT max(seq) FROM records").fetchone()[0]
        )
        sqlite_utils.Database(d.home / "audit.db").execute("DELETE FROM records WHERE seq = ?", [head])
        _wait(lambda: [a for a in rx.alerts if a["data"].get("kind") == "truncated"])
        alert = [a for a in rx.alerts if a["data"].get("kind") == "truncated"][0]
        assert alert["data"]["checkpoint_seq"] == head
        assert d.act("shopify.list_my_orders", token=d.token()).status_code == 503
        st = json.loads(sh(d.env, "daemon", "status", "--json").stdout)
        assert st["audit_chain"]["chain"] == "broken" and st["audit_sinks"][0]["name"] == "file-1"
        assert st["alert_webhooks"][0]["failures"] == 0
        assert rx.bad == 0
        time.sleep(2.5)  # more walks and head checks: they find the same two breaks, and say nothing new
        kinds = [a["data"]["kind"] for a in rx.alerts if a["type"] == "audit.chain_broken"]
        assert kinds == ["verify_failed", "truncated"]  # once per break
    finally:
        sh(d.env, "daemon", "stop", check=False)
        rx.server.shutdown()
        sandbox_server.reset()
