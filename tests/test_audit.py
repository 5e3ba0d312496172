import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlite_utils

from botctl import audit, crypto
from botctl.session import Session


@pytest.fixture
def logged(home, cli):
    """A home with 6 audit records: init + create + 4 changes."""
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    for plan in ("business", "free", "pro"):
        assert cli("workspace", "set-plan", "acme", plan).code == 0
    assert cli("workspace", "create", "beta").code == 0
    records = cli("audit", "-n", "100", "--json").ndjson()
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    return home


def _verify(cli):
    r = cli("audit", "verify", "--json")
    return r.code, r.json()


def test_intact_chain_verifies(logged, cli):
    code, v = _verify(cli)
    assert code == 0 and v["ok"] and v["records"] == 6 and v["checkpoint_seq"] == 6
    assert v["sealed_breaks"] == [] and v["anchors"] == 0 and v["first_bad_seq"] is None


def test_record_fields(logged, cli):
    rec = cli("audit", "show", "2", "--json").json()
    # A PostgreSQL home's records also name the node that wrote them (botctl/nodes.py).
    node = {"node"} if os.environ.get("BOTCTL_DATABASE_URL", "").startswith("postgres") else set()
    assert (
        set(rec)
        == {
            "seq",
            "v",
            "ts",
            "workspace",
            "actor",
            "event",
            "action",
            "connector",
            "outcome",
            "reason",
            "detail",
            "request_id",
            "prev_hash",
            "hash",
        }
        | node
    )
    assert rec["actor"] == {"type": "operator", "sub": rec["actor"]["sub"]}
    assert rec["ts"].endswith("Z") and len(rec["ts"]) == len("2026-11-28T00:00:00.000000Z")
    assert rec["prev_hash"] == cli("audit", "show", "1", "--json").json()["hash"]


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_edit_a_field_detected(logged, cli):
    db = sqlite_utils.Database(logged.audit_db)
    body = json.loads(db["records"].get(3)["body"])
    body["outcome"] = "denied"
    db["records"].update(3, {"body": json.dumps(body, sort_keys=True, separators=(",", ":"))})
    code, v = _verify(cli)
    assert code == 10 and v["first_bad_seq"] == 3 and not v["ok"]
    r = cli("audit", "verify")
    assert r.code == 10 and "broken at record 3" in r.err


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_delete_middle_detected(logged, cli):
    sqlite_utils.Database(logged.audit_db)["records"].delete(3)
    code, v = _verify(cli)
    assert code == 10 and v["first_bad_seq"] == 3 and "missing" in v["problem"]


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_swap_two_records_detected(logged, cli):
    t = sqlite_utils.Database(logged.audit_db)["records"]
    r2, r4 = t.get(2), t.get(4)
    t.update(2, {k: r4[k] for k in ("body", "prev_hash", "hash")})
    t.update(4, {k: r2[k] for k in ("body", "prev_hash", "hash")})
    code, v = _verify(cli)
    assert code == 10 and v["first_bad_seq"] == 2


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_forged_record_with_plain_sha256_detected(logged, cli):
    t = sqlite_utils.Database(logged.audit_db)["records"]
    head = t.get(6)
    body = audit.canonical(audit.make_record("workspace.deleted", workspace="acme"))
    forged = hashlib.sha256(f"{head['hash']}|7|{body}".encode()).hexdigest()
    t.insert({"seq": 7, "body": body, "prev_hash": head["hash"], "hash": forged})
    code, v = _verify(cli)
    assert code == 10 and v["first_bad_seq"] == 7


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_rechained_log_without_key_detected(logged, cli):
    """Rewrite the whole chain with plain SHA-256 (no key): fails at record 1."""
    t = sqlite_utils.Database(logged.audit_db)["records"]
    prev = audit.GENESIS
    for row in list(t.rows_where(order_by="seq")):
        h = hashlib.sha256(f"{prev}|{row['seq']}|{row['body']}".encode()).hexdigest()
        t.update(row["seq"], {"prev_hash": prev, "hash": h})
        prev = h
    code, v = _verify(cli)
    assert code == 10 and v["first_bad_seq"] == 1


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_truncated_tail_detected(logged, cli):
    t = sqlite_utils.Database(logged.audit_db)["records"]
    t.delete(6)
    t.delete(5)
    code, v = _verify(cli)
    assert code == 10 and v["first_bad_seq"] == 5 and "truncated" in v["problem"]


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_edited_checkpoint_detected(logged, cli):
    sqlite_utils.Database(logged.vault_db)["audit_checkpoint"].update(1, {"seq": 3})
    code, v = _verify(cli)
    assert code == 10 and "checkpoint" in v["problem"]


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_deleted_audit_db_detected(logged, cli):
    for suffix in ("", "-wal", "-shm"):
        p = logged.path / f"audit.db{suffix}"
        if p.exists():
            p.unlink()
    r = cli("audit", "verify", "--json")
    assert r.code == 10 and "missing" in r.json()["problem"]


def test_filters_and_json(logged, cli):
    out = cli("audit", "--json", "-w", "beta").ndjson()
    assert [r["event"] for r in out] == ["workspace.created"]
    out = cli("audit", "--json", "--event", "workspace.plan_changed").ndjson()
    assert [r["seq"] for r in out] == [3, 4, 5]
    assert [r["seq"] for r in cli("audit", "--json", "-n", "2").ndjson()] == [5, 6]
    assert len(cli("audit", "--json", "--since", "10m").ndjson()) == 6
    assert cli("audit", "--json", "--since", "2999-01-01T00:00").ndjson() == []
    assert len(cli("audit", "--json", "--outcome", "ok").ndjson()) == 6
    assert cli("audit", "--json", "--outcome", "denied").ndjson() == []
    r = cli("audit", "--outcome", "maybe")
    assert r.code == 2 and "unknown outcome" in r.err
    r = cli("audit", "--since", "yesterday-ish")
    assert r.code == 2 and "--since" in r.err
    r = cli("audit", "show", "99")
    assert r.code == 3 and "no audit record with seq 99" in r.err


def test_visitor_filter(home):
    with Session(home) as app:
        app.audit(
            "action.run",
            workspace="w1",
            actor={"type": "visitor", "sub": "u1", "email": "Ada@Example.com"},
            action="stripe.list_my_invoices",
            connector="stripe",
            outcome="denied",
            reason="forbidden",
        )
        app.audit(
            "action.run", workspace="w1", actor={"type": "visitor", "sub": "u2", "email": "grace@example.com"}
        )
    r = audit.AuditReader(home)
    try:
        got = r.latest(audit.Filters(visitor="ada@example.com"), 10)
    finally:
        r.close()
    assert [g["actor"]["sub"] for g in got] == ["u1"]


def test_parse_since():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert audit.parse_since("10m", now=now) == "2026-11-28T11:50:00.000000Z"
    assert audit.parse_since("2h", now=now) == "2026-11-28T10:00:00.000000Z"
    assert audit.parse_since("2026-11-01T00:00", now=now) == "2026-11-01T00:00:00.000000Z"
    assert audit.parse_since("2026-11-01T01:00+01:00", now=now) == "2026-11-01T00:00:00.000000Z"


def test_secrets_scrubbed_from_detail():
    rec = audit.make_record(
        "connection.created", detail={"api_key": "sk_live_x", "nested": {"refresh_token": "r"}, "label": "ok"}
    )
    assert rec["detail"] == {
        "api_key": "[redacted]",
        "nested": {"refresh_token": "[redacted]"},
        "label": "ok",
    }


def test_batched_append_is_one_chain(home):
    with Session(home) as app:
        app.vault  # noqa: B018  (initialise)
        recs = [audit.make_record("bench.event", detail={"i": i}) for i in range(250)]
        out = app.writer.append_many(recs)
        assert [r["seq"] for r in out] == list(range(2, 252))
        v = audit.verify(home, app.vault.audit_key(), app.vault.conn)
    assert v.ok and v.records == 251 and v.checkpoint_seq == 251


APPENDER = """
import sys
from botctl.session import Session
from botctl.home import Home
with Session(Home.resolve(sys.argv[1])) as app:
    for i in range(int(sys.argv[2])):
        app.audit("test.concurrent", detail={"proc": sys.argv[3], "i": i})
"""


def test_two_processes_append_concurrently(home, cli, monkeypatch):
    key = base64.b64encode(crypto.new_key()).decode()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", key)
    assert cli("init").code == 0
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(home.path), "500", name], env=os.environ.copy())
        for name in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    code, v = _verify(cli)
    assert code == 0, v
    assert v["records"] == 1001 and v["checkpoint_seq"] == 1001
    recs = cli("audit", "--json", "-n", "2000", "--event", "test.concurrent").ndjson()
    assert sorted((r["detail"]["proc"], r["detail"]["i"]) for r in recs) == sorted(
        [(n, i) for n in "ab" for i in range(500)]
    )


def test_follow_streams_new_records(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "audit", "-f", "--json", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "workspace.created"
        assert cli("workspace", "set-plan", "acme", "pro").code == 0
        assert cli("workspace", "create", "beta").code == 0
        nxt = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [r["event"] for r in nxt] == ["workspace.plan_changed", "workspace.created"]
    finally:
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 130  # interrupted by Ctrl-C, as a shell counts it (issue #20)
    assert "Traceback" not in proc.stderr.read()


def test_chain_mac_matches_stdlib_hmac():
    import hmac as std_hmac
    import random

    rnd = random.Random(7)
    for klen in (0, 1, 32, 63, 64, 65, 200):
        key = rnd.randbytes(klen)
        mac = audit.ChainMac(key)
        for mlen in (0, 1, 55, 56, 64, 1000):
            msg = rnd.randbytes(mlen)
            assert mac.hexdigest(msg) == std_hmac.digest(key, msg, "sha256").hex()
    key = rnd.randbytes(32)
    assert (
        audit.ChainMac(key).link("ab" * 32, 5, b"{}")
        == std_hmac.digest(key, b"ab" * 32 + b"|5|{}", "sha256").hex()
    )
