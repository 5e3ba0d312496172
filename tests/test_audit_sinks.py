"""Audit sinks: a file, a real syslog listener (UDP and TCP) and a webhook on loopback receive every
record with its chain hash, in order; a sink that is down keeps its backlog (reported) and gets it when
it comes back; local writes never wait for a sink; what a sink received verifies independently."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlite_utils

REPO = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")


@pytest.fixture
def logged(home, cli):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    assert cli("workspace", "set-plan", "acme", "business").code == 0
    return home


def _chain(home) -> list[tuple[int, str]]:
    return [
        (r["seq"], r["hash"])
        for r in sqlite_utils.Database(home.audit_db)["records"].rows_where(order_by="seq")
    ]


def _records(lines: list[str]) -> list[dict]:
    return [json.loads(x) for x in lines if x.startswith('{"seq":')]


def test_file_sink_receives_every_record_and_verifies_independently(logged, cli, tmp_path):
    path = tmp_path / "sink.ndjson"
    r = cli("audit", "sink", "add", "file", str(path))
    assert r.code == 0, r.err
    assert cli("audit", "sink", "flush").code == 0
    assert cli("workspace", "create", "beta").code == 0
    assert cli("audit", "sink", "flush").code == 0
    lines = path.read_text().split("\n")[:-1]
    got = [(rec["seq"], rec["hash"]) for rec in _records(lines)]
    assert got == _chain(logged)  # every record, in order, with its chain hash, once
    assert any(x.startswith('{"anchor":') for x in lines)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    listed = cli("audit", "sink", "list", "--json").json()
    assert listed[0]["backlog"] == 0 and listed[0]["delivered_seq"] == got[-1][0]
    if NODE:
        key = tmp_path / "k"
        assert cli("audit", "export-key", "--out", str(key)).code == 0
        proc = subprocess.run(
            [NODE, str(REPO / "tools" / "verify-audit.mjs"), "--json", str(path)],
            env={"BOTCTL_AUDIT_KEY_FILE": str(key)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        v = json.loads(proc.stdout)
        assert proc.returncode == 0 and v["ok"] and v["anchors"] >= 2 and v["records"] == len(got)


def test_file_sink_from_now_skips_history(logged, cli, tmp_path):
    path = tmp_path / "sink.ndjson"
    assert cli("audit", "sink", "add", "file", str(path), "--from-now").code == 0
    head = _chain(logged)[-1][0]  # the sink_added record itself is after the start point
    assert cli("audit", "sink", "flush").code == 0
    assert [rec["seq"] for rec in _records(path.read_text().split("\n"))] == [head]


class _Syslog:
    """A real syslog server on loopback: UDP datagrams or TCP with RFC 6587 octet counting."""

    def __init__(self, protocol: str) -> None:
        self.messages: list[bytes] = []
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if protocol == "tcp":
            self.sock.listen()
        self.sock.settimeout(0.2)
        self._stop = False
        self.thread = threading.Thread(target=self._udp if protocol == "udp" else self._tcp, daemon=True)
        self.thread.start()

    def _udp(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(65535))
            except TimeoutError:
                continue

    def _tcp(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            data = b""
            with conn:
                conn.settimeout(5)
                while chunk := conn.recv(65536):
                    data += chunk
            while data:
                length, _, rest = data.partition(b" ")
                n = int(length)
                self.messages.append(rest[:n])
                data = rest[n:]

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()

    def lines(self) -> list[str]:
        out = []
        for m in self.messages:
            match = re.match(rb"<134>1 \S+ \S+ botctl \d+ audit - (.*)$", m, re.S)
            assert match, m[:120]
            out.append(match.group(1).decode())
        return out


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_syslog_sink_to_a_real_listener(logged, cli, protocol):
    server = _Syslog(protocol)
    try:
        r = cli(
            "audit", "sink", "add", "syslog", "--server", f"127.0.0.1:{server.port}", "--protocol", protocol
        )
        assert r.code == 0, r.err
        assert cli("audit", "sink", "flush").code == 0
        import time

        chain = _chain(logged)
        deadline = time.monotonic() + 5
        while len(_records(server.lines())) < len(chain) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.close()
    got = [(rec["seq"], rec["hash"]) for rec in _records(server.lines())]
    assert got == chain
    assert any(x.startswith('{"anchor":') for x in server.lines())


class _Hook:
    """A webhook receiver on loopback that checks the HMAC signature and can be down (503) or up."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.up = True
        self.bodies: list[tuple[dict, bytes]] = []
        self.bad_signatures = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sig = dict(p.split("=", 1) for p in self.headers["X-Botctl-Signature"].split(","))
                want = hmac.new(hook.secret, sig["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, sig["v1"]):
                    hook.bad_signatures += 1
                    self.send_response(401)
                elif not hook.up:
                    self.send_response(503)
                else:
                    hook.bodies.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("BOTCTL_TEST_SINK_SECRET", "s3cret-for-the-test")
    h = _Hook(b"s3cret-for-the-test")
    yield h
    h.close()


def test_webhook_sink_down_then_up_gets_the_backlog(logged, cli, hook):
    hook.up = False
    r = cli("audit", "sink", "add", "webhook", hook.url, "--secret-env", "BOTCTL_TEST_SINK_SECRET")
    assert r.code == 0, r.err
    assert cli("audit", "sink", "flush").code == 1  # still behind: exit 1
    for name in ("beta", "gamma"):  # local writes go on while the sink is down
        assert cli("workspace", "create", name).code == 0
    listed = cli("audit", "sink", "list", "--json").json()[0]
    assert (
        listed["delivered_seq"] == 0 and listed["backlog"] == len(_chain(logged)) and listed["failures"] >= 1
    )
    assert "503" in listed["last_error"]
    doctor = cli("doctor", "--json")
    shipping = [f for f in doctor.json()["findings"] if f["check"] == "audit shipping"]
    assert shipping and shipping[0]["status"] == "warn" and "not delivered" in shipping[0]["message"]
    hook.up = True
    assert cli("audit", "sink", "flush").code == 0
    got = [
        (rec["seq"], rec["hash"]) for _, body in hook.bodies for rec in _records(body.decode().split("\n"))
    ]
    assert got == _chain(logged) and hook.bad_signatures == 0
    headers = hook.bodies[0][0]
    assert headers["Content-Type"] == "application/x-ndjson" and headers["X-Botctl-Event"] == "audit.records"
    assert cli("audit", "sink", "list", "--json").json()[0]["backlog"] == 0


def test_webhook_secret_only_by_env_name_and_urls_checked(logged, cli, hook):
    for url, why in (
        ("http://example.com/hook", "not loopback"),
        ("https://u:p@example.com/h", "credentials"),
        ("ftp://example.com/", "not an http(s) URL"),
    ):
        r = cli("audit", "sink", "add", "webhook", url, "--secret-env", "BOTCTL_TEST_SINK_SECRET")
        assert r.code == 2 and why in r.err, (url, r.err)
    r = cli("audit", "sink", "add", "webhook", hook.url, "--secret-env", "s3cret-for-the-test!")
    assert r.code == 2 and "not an environment variable name" in r.err
    assert cli("audit", "sink", "add", "webhook", hook.url).code == 2
    assert cli("audit", "sink", "list", "--json").json() == []  # nothing half-added
    assert (
        cli("audit", "sink", "add", "webhook", hook.url, "--secret-env", "BOTCTL_TEST_SINK_SECRET").code == 0
    )
    stored = Path(logged.path / "shipping.db").read_bytes()
    assert b"s3cret-for-the-test" not in stored
    added = cli("audit", "--event", "audit.sink_added", "--json").ndjson()[-1]
    assert added["detail"]["signed_with_env"] == "BOTCTL_TEST_SINK_SECRET"


def _snapshot(home, where):
    import sqlite3

    for name in ("audit.db", "vault.db"):
        src = sqlite3.connect(home.path / name)
        dst = sqlite3.connect(where / name)
        src.backup(dst)
        src.close()
        dst.close()


def _restore(home, where):
    import shutil as sh

    for name in ("audit.db", "vault.db"):
        for suffix in ("-wal", "-shm"):
            (home.path / (name + suffix)).unlink(missing_ok=True)
        sh.copyfile(where / name, home.path / name)


def test_log_truncated_under_a_sink_raises_the_chain_alert(logged, cli, tmp_path, hook):
    path = tmp_path / "sink.ndjson"
    assert cli("audit", "sink", "add", "file", str(path)).code == 0
    assert cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_SINK_SECRET").code == 0
    assert cli("audit", "sink", "flush").code == 0
    head = _chain(logged)[-1][0]
    sqlite_utils.Database(logged.audit_db)["records"].delete(head)  # roll the tail back under the sink
    assert cli("audit", "sink", "flush").code == 0
    problems = [
        json.loads(b)["data"]["problem"]
        for _, b in hook.bodies
        if json.loads(b)["type"] == "audit.chain_broken"
    ]
    assert len(problems) == 1 and "tail deleted" in problems[0]  # the head held against the checkpoint
    assert cli("audit", "sink", "flush").code == 0
    assert len(hook.bodies) == 1  # raised once per break, not once per pass


def test_both_files_restored_from_a_backup_only_the_sink_catches_it(logged, cli, tmp_path, hook):
    """audit.db and vault.db rolled back together agree with each other: `audit verify` says intact.
    The sink still holds the lost record, and the shipper tells."""
    path = tmp_path / "sink.ndjson"
    backup = tmp_path / "backup"
    backup.mkdir()
    assert cli("audit", "sink", "add", "file", str(path)).code == 0
    assert cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_SINK_SECRET").code == 0
    _snapshot(logged, backup)
    assert cli("workspace", "delete", "acme", "--yes").code == 0  # what the rollback will hide
    assert cli("audit", "sink", "flush").code == 0
    lost = _chain(logged)[-1][0]
    _restore(logged, backup)
    assert cli("audit", "verify").code == 0
    assert cli("audit", "sink", "flush").code == 0
    alerts = [json.loads(b) for _, b in hook.bodies]
    assert [a["type"] for a in alerts] == ["audit.chain_broken"], alerts
    assert f"rewritten under sink file-1: record {lost} is gone" in alerts[0]["data"]["problem"]
    seqs = [r["seq"] for r in _records(path.read_text().split("\n"))]
    assert seqs.count(lost) == 1 and lost > _chain(logged)[-1][0]  # the sink kept the record the log lost


def test_sink_remove_and_unknown(logged, cli, tmp_path):
    assert cli("audit", "sink", "add", "file", str(tmp_path / "a"), "--name", "offsite").code == 0
    assert cli("audit", "sink", "add", "file", str(tmp_path / "b"), "--name", "offsite").code != 0
    assert cli("audit", "sink", "remove", "offsite").code == 0
    assert cli("audit", "sink", "remove", "offsite").code == 3
    assert cli("audit", "sink", "add", "carrier-pigeon", "x").code == 2
