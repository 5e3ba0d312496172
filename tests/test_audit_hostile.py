"""Attacks on the audit log from a hostile review, each kept as a test.

* a deleted tail must not heal itself: writers (CLI, daemon) refuse to chain onto a head that
  disagrees with the checkpoint, until `audit seal-break` records the break in the chain;
* a rollback (newest records deleted, an older checkpoint row restored) is caught by a signed anchor
  exported before it (`audit anchor`, `audit verify --anchor / --expect-head`);
* audit data (action names, visitor claims) cannot drive the operator's terminal.
"""

import base64
import itertools
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botctl import audit
from botctl.session import Session

CONTROL = ["\x1b", "\r", "\x07", "\x9b", "\x7f", "\u202e", "\u2066", "\u200f", "\x00", "\x08"]


@pytest.fixture
def logged(home, cli):
    """A home with 6 audit records: init + create + 4 changes."""
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    for plan in ("business", "free", "pro"):
        assert cli("workspace", "set-plan", "acme", plan).code == 0
    assert cli("workspace", "create", "beta").code == 0
    assert [r["seq"] for r in cli("audit", "-n", "100", "--json").ndjson()] == [1, 2, 3, 4, 5, 6]
    return home


def _sql(path, sql, args=()):
    c = sqlite3.connect(path)
    try:
        rows = c.execute(sql, args).fetchall()
        c.commit()
        return rows
    finally:
        c.close()


def _head(home):
    return _sql(home.audit_db, "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")[0]


def _checkpoint(home):
    return _sql(home.vault_db, "SELECT seq, hash, mac, updated_at FROM audit_checkpoint WHERE id = 1")[0]


def _verify(cli, *extra):
    r = cli("audit", "verify", "--json", *extra)
    return r.code, r.json()


def _workspaces(cli):
    return [w["name"] for w in cli("workspace", "list", "--json").json()]


# -- 1b: a deleted tail must not heal ------------------------------------------------------------------


def test_deleted_tail_does_not_heal(logged, cli):
    _sql(logged.audit_db, "DELETE FROM records WHERE seq = 6")
    assert _verify(cli)[0] == 10
    for name in ("gamma", "delta"):  # the review's repro: two more changes used to make it "intact"
        r = cli("workspace", "create", name)
        assert r.code == 11, (r.out, r.err)
        assert "audit" in r.err and "seal-break" in r.err and "Traceback" not in r.err
        assert len(r.err.strip().splitlines()) <= 2
    assert _workspaces(cli) == ["acme", "beta"]  # the change rolled back with its record
    assert _head(logged)[0] == 5 and _checkpoint(logged)[0] == 6
    code, v = _verify(cli)
    assert code == 10 and "truncated" in v["problem"]
    findings = {f["check"]: f for f in cli("doctor", "--json").json()["findings"]}
    assert findings["audit"]["status"] == "fail"


def test_refusal_is_a_stable_json_error(logged, cli):
    _sql(logged.audit_db, "DELETE FROM records WHERE seq >= 5")
    r = cli("workspace", "create", "gamma", "--json")
    assert r.code == 11 and r.json()["error"]["code"] == "audit_chain_broken"


@pytest.mark.parametrize(
    "attack", ["rewritten_head", "forged_checkpoint", "deleted_checkpoint", "deleted_log"]
)
def test_writer_refuses_other_head_mismatches(logged, cli, attack):
    if attack == "rewritten_head":  # record 6 is not the one the (authentic) checkpoint names
        with Session(logged) as app:
            key = app.vault.audit_key()
        _sql(
            logged.vault_db,
            "UPDATE audit_checkpoint SET hash = ?, mac = ? WHERE id = 1",
            ("ab" * 32, audit.checkpoint_mac(key, 6, "ab" * 32)),
        )
    elif attack == "forged_checkpoint":  # moved back without the key
        _sql(logged.vault_db, "UPDATE audit_checkpoint SET seq = 3 WHERE id = 1")
    elif attack == "deleted_checkpoint":
        _sql(logged.vault_db, "DELETE FROM audit_checkpoint")
    else:
        for suffix in ("", "-wal", "-shm"):
            p = logged.path / f"audit.db{suffix}"
            if p.exists():
                p.unlink()
    r = cli("workspace", "create", "gamma")
    assert r.code == 11 and "Traceback" not in r.err, r.err
    assert _workspaces(cli) == ["acme", "beta"]


def test_writer_accepts_a_checkpoint_lagging_behind(logged, cli):
    """A crash between the audit commit and the checkpoint leaves records past the checkpoint: not a break."""
    with Session(logged) as app:
        app.vault  # noqa: B018
        w = app.writer
        w._checkpoint = lambda seq, head: None  # the process "dies" before moving the checkpoint
        w.append(audit.make_record("test.lagging"))
    assert _head(logged)[0] == 7 and _checkpoint(logged)[0] == 6
    assert cli("workspace", "create", "gamma").code == 0
    assert _verify(cli)[0] == 0


def test_group_committer_refuses_and_logs_once(logged, caplog):
    _sql(logged.audit_db, "DELETE FROM records WHERE seq = 6")
    caplog.set_level(logging.ERROR)
    app = Session(logged, actor={"type": "system"}, create=False)
    try:
        app.use_group_commit()
        from botctl.errors import AuditChainBroken

        for _ in range(3):
            with pytest.raises(AuditChainBroken) as info:
                app.audit("action.run", workspace="acme", outcome="denied", reason="unknown_action")
            assert info.value.code == "audit_chain_broken" and info.value.exit_code == 11
        state = app._committer.chain_state()
        assert state["chain"] == "broken" and state["refused"] == 3 and state["checkpoint_seq"] == 6
        assert state["head_seq"] == 5
    finally:
        app.close()
    logged_lines = [r for r in caplog.records if "audit" in r.getMessage().lower()]
    assert len(logged_lines) == 1
    assert _head(logged)[0] == 5


def test_provider_status_reports_a_broken_chain(logged, cli):
    from starlette.testclient import TestClient

    from botctl.provider.app import create_app

    with TestClient(
        create_app(str(logged.path), refresh_interval=3600), raise_server_exceptions=False
    ) as client:
        st = client.get("/v1/status").json()
        assert st["audit"]["chain"] == "ok" and "batches" in st["audit"] and "records" in st["audit"]
        _sql(logged.audit_db, "DELETE FROM records WHERE seq = 6")
        r = client.post("/v1/workspaces/acme/actions/nope.nothing", json={"params": {}, "request_id": "r1"})
        # Fail closed: no answer without its record; the visitor is told actions are paused (503).
        assert r.json()["status"] == 503 and r.json()["body"]["error"]["code"] == "audit_unavailable"
        st = client.get("/v1/status").json()
        assert st["audit"]["chain"] == "broken" and st["audit"]["checkpoint_seq"] == 6
        assert st["audit"]["head_seq"] == 5 and st["audit"]["refused"] >= 1
        assert cli("audit", "seal-break", "--reason", "tail lost in a restore", "--yes").code == 0
        r = client.post("/v1/workspaces/acme/actions/nope.nothing", json={"params": {}, "request_id": "r2"})
        assert r.status_code == 200 and r.json()["body"]["error"]["code"] == "unknown_action"
        assert client.get("/v1/status").json()["audit"]["chain"] == "ok"
    assert _verify(cli)[0] == 0


def test_seal_break_records_the_evidence_and_restores_writes(logged, cli):
    expected_seq, expected_hash = _checkpoint(logged)[:2]
    _sql(logged.audit_db, "DELETE FROM records WHERE seq >= 5")
    found = _head(logged)
    r = cli("audit", "seal-break", "--reason", "restored audit.db from last night's backup")
    assert r.code == 2 and "--yes" in r.err  # not on a terminal: needs --yes
    r = cli("audit", "seal-break", "--yes")
    assert r.code == 2 and "--reason" in r.err
    r = cli(
        "audit", "seal-break", "--reason", "restored audit.db from last night's backup", "--yes", "--json"
    )
    assert r.code == 0, r.err
    sealed = r.json()
    assert sealed["seq"] == 5 and sealed["event"] == "audit.seal_break"
    detail = sealed["detail"]
    assert detail["expected"] == {"seq": expected_seq, "hash": expected_hash, "authenticated": True}
    assert detail["found"] == {"seq": found[0], "hash": found[1]}
    assert detail["note"] == "restored audit.db from last night's backup" and detail["problem"]
    assert sealed["prev_hash"] == found[1]
    # The chain verifies again, and says so with the break listed as history.
    code, v = _verify(cli)
    assert code == 0 and v["ok"] and v["checkpoint_seq"] == 5
    assert [b["seq"] for b in v["sealed_breaks"]] == [5]
    assert v["sealed_breaks"][0]["expected"]["seq"] == 6 and v["sealed_breaks"][0]["found"]["seq"] == 4
    r = cli("audit", "verify")
    assert r.code == 0 and "intact" in r.err and "sealed break" in r.err and "record 5" in r.err
    # Writes work again; the sealed break stays listed.
    assert cli("workspace", "create", "gamma").code == 0
    code, v = _verify(cli)
    assert code == 0 and v["records"] == 6 and len(v["sealed_breaks"]) == 1
    assert cli("audit", "show", "5").code == 0
    findings = {f["check"]: f for f in cli("doctor", "--json").json()["findings"]}
    assert findings["audit"]["status"] == "ok"


def test_seal_break_refuses_an_intact_chain(logged, cli):
    r = cli("audit", "seal-break", "--reason", "just because", "--yes")
    assert r.code != 0 and "nothing to seal" in r.err and "Traceback" not in r.err
    assert _verify(cli)[1]["records"] == 6


def test_seal_break_after_the_log_was_deleted(logged, cli):
    for suffix in ("", "-wal", "-shm"):
        p = logged.path / f"audit.db{suffix}"
        if p.exists():
            p.unlink()
    r = cli("audit", "seal-break", "--reason", "audit.db lost with the old disk", "--yes", "--json")
    assert r.code == 0, r.err
    assert r.json()["seq"] == 1 and r.json()["detail"]["found"] == {"seq": 0, "hash": audit.GENESIS}
    code, v = _verify(cli)
    assert code == 0 and v["checkpoint_seq"] == 1 and len(v["sealed_breaks"]) == 1
    assert cli("workspace", "create", "gamma").code == 0


def test_seal_break_of_a_forged_checkpoint(logged, cli):
    _sql(logged.vault_db, "UPDATE audit_checkpoint SET seq = 3 WHERE id = 1")
    r = cli("audit", "seal-break", "--reason", "checkpoint edited", "--yes", "--json")
    assert r.code == 0, r.err
    assert r.json()["detail"]["expected"]["authenticated"] is False
    assert _verify(cli)[0] == 0


# -- 4: a rollback without the key is caught by an anchor -------------------------------------------------


_changes = itertools.count()


def _grow(cli, home, n):
    """n more records; the checkpoint row at each head (what an attacker finds in the WAL or a backup)."""
    snaps = {}
    for _ in range(n):
        assert cli("workspace", "set-origins", "acme", f"https://r{next(_changes)}.example").code == 0
        snaps[_head(home)[0]] = _checkpoint(home)
    return snaps


def _old_checkpoint(home, seq):
    """The checkpoint row as it was when `seq` was the head: authentic, found in the WAL or any backup."""
    h = _sql(home.audit_db, "SELECT hash FROM records WHERE seq = ?", (seq,))[0][0]
    with Session(home) as app:
        key = app.vault.audit_key()
    return seq, h, audit.checkpoint_mac(key, seq, h), "2026-01-01T00:00:00.000000Z"


def _roll_back(home, seq, cp_row):
    _sql(home.audit_db, "DELETE FROM records WHERE seq > ?", (seq,))
    _sql(
        home.vault_db,
        "UPDATE audit_checkpoint SET seq = ?, hash = ?, mac = ?, updated_at = ? WHERE id = 1",
        cp_row,
    )


@pytest.mark.parametrize("anchor_at,rollback_to", [(8, 7), (8, 4), (10, 7), (6, 2), (6, 5)])
def test_rollback_detected_by_a_newer_anchor(logged, cli, tmp_path, anchor_at, rollback_to):
    anchors = tmp_path / "anchors.jsonl"
    _grow(cli, logged, anchor_at - 6)
    r = cli("audit", "anchor", "--out", str(anchors))
    assert r.code == 0, r.err
    _grow(cli, logged, 12 - anchor_at)
    _roll_back(logged, rollback_to, _old_checkpoint(logged, rollback_to))
    assert _verify(cli)[0] == 0  # without an anchor a local-only log cannot tell (documented)
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 10 and not v["ok"] and "anchor" in v["problem"], v
    assert v["first_bad_seq"] == rollback_to + 1
    # Re-grown past the anchor with new records: still caught (record anchor_at differs).
    _grow(cli, logged, anchor_at - rollback_to + 1)
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 10 and f"record {anchor_at}" in v["problem"], v
    r = cli("audit", "verify", "--anchor", str(anchors))
    assert r.code == 10 and "anchor" in r.err and "Traceback" not in r.err


def test_anchor_older_than_the_rollback_cannot_tell(logged, cli, tmp_path):
    """The honest limit: an anchor proves only what existed when it was exported."""
    anchors = tmp_path / "anchors.jsonl"
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0  # at 6
    _grow(cli, logged, 4)  # 7..10
    _roll_back(logged, 8, _old_checkpoint(logged, 8))
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 0 and v["anchors"] == 1


def test_expect_head(logged, cli):
    seq, h = _head(logged)
    assert _verify(cli, "--expect-head", f"{seq}:{h}")[0] == 0
    _grow(cli, logged, 2)
    assert _verify(cli, "--expect-head", f"{seq}:{h}")[0] == 0  # the log grew: still reaches it
    _roll_back(logged, 7, _old_checkpoint(logged, 7))
    code, v = _verify(cli, "--expect-head", "8:" + "0" * 64)
    assert code == 10 and "8" in v["problem"]
    code, v = _verify(cli, "--expect-head", f"{seq}:{'ab' * 32}")
    assert code == 10 and f"record {seq}" in v["problem"]
    for bad in ("6", "x:abc", "6:xyz", "-1:" + "0" * 64):
        r = cli("audit", "verify", "--expect-head", bad)
        assert r.code == 2 and "--expect-head" in r.err and "Traceback" not in r.err


def test_anchor_lines_are_signed(logged, cli, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    out = cli("audit", "anchor")
    assert out.code == 0
    line = json.loads(out.out)
    assert set(line) == {"v", "seq", "hash", "ts", "key_id", "sig"} and line["seq"] == 6
    assert cli("audit", "anchor", "--out", str(anchors), "--json").json()["seq"] == 6
    # An edited line (the hash of a rolled-back log) no longer authenticates.
    forged = dict(line, seq=3, hash=cli("audit", "show", "3", "--json").json()["hash"])
    anchors.write_text(json.dumps(forged) + "\n")
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 10 and "not signed" in v["problem"]
    # Another install's anchor (a different audit key) does not either.
    anchors.write_text(json.dumps(line) + "\n")
    assert _verify(cli, "--anchor", str(anchors))[0] == 0
    # An outside verifier holds only the public key and the documented message format.
    pem = cli("audit", "anchor", "--public-key").out
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    pub = load_pem_public_key(pem.encode())
    msg = b"botctl-audit-anchor/v1|%d|%s|%s" % (line["seq"], line["hash"].encode(), line["ts"].encode())
    pub.verify(base64.b64decode(line["sig"]), msg)  # raises if it does not verify


def test_anchor_from_another_install_is_refused(logged, cli, tmp_path, monkeypatch):
    anchors = tmp_path / "anchors.jsonl"
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0
    monkeypatch.setenv("BOTCTL_HOME", str(tmp_path / "other"))
    assert cli("workspace", "create", "acme").code == 0
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 10 and "not signed" in v["problem"]


@pytest.mark.parametrize(
    "content",
    [
        "not json\n",
        '{"seq": 1}\n',
        "[1, 2]\n",
        '{"v":1,"seq":"x","hash":"a","ts":"t","key_id":"k","sig":"s"}\n',
    ],
)
def test_malformed_anchor_file(logged, cli, tmp_path, content):
    f = tmp_path / "anchors.jsonl"
    f.write_text(content)
    r = cli("audit", "verify", "--anchor", str(f))
    assert r.code == 2 and f"{f}:1" in r.err and "Traceback" not in r.err
    r = cli("audit", "verify", "--anchor", str(tmp_path / "missing.jsonl"))
    assert r.code == 2 and "Traceback" not in r.err


def test_anchor_refuses_a_broken_head(logged, cli):
    _sql(logged.audit_db, "DELETE FROM records WHERE seq = 6")
    r = cli("audit", "anchor")
    assert r.code == 11 and r.out == ""


# -- 5: terminal injection ---------------------------------------------------------------------------------

FORGED_ACTION = (
    "\x1b[2K\r999  2026-12-01 00:00:00  acme  operator:root  workspace.deleted  -  ok\x1b]0;pwned\x07"
)
HOSTILE_EMAIL = "ada\x1b[8m@evil\rexample.com\u202egro.\u2066x\x9b31m\x7f"


def _hostile_records(home):
    with Session(home) as app:
        app.audit(
            "action.run",
            workspace="acme",
            actor={"type": "visitor", "sub": "u\x1b]0;title\x07", "email": HOSTILE_EMAIL},
            action=FORGED_ACTION,
            connector=None,
            outcome="denied",
            reason="unknown_action\tok\nforged",
            detail={"params": {"name": "Eve\u202e\u2067 \x1b[31m", "tab": "a\tb\nc"}},
        )


def _assert_clean(text):
    for ch in CONTROL:
        assert ch not in text, (repr(ch), text)


def test_tsv_escapes_and_keeps_its_shape(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    _hostile_records(home)
    r = cli("audit", "-n", "5")
    _assert_clean(r.out)
    lines = r.out.splitlines()
    assert len(lines) == 3  # no forged rows
    assert all(line.count("\t") == 7 for line in lines)  # no forged columns
    assert (
        "\\x1b[2K\\r999" in lines[-1]
        and "\\u202e" in lines[-1]
        and "unknown_action\\tok\\nforged" in lines[-1]
    )


def test_table_on_a_terminal_escapes(home, cli, monkeypatch):
    from botctl.cli import output

    assert cli("workspace", "create", "acme").code == 0
    _hostile_records(home)
    monkeypatch.setattr(output, "_is_tty", lambda: True)
    r = cli("audit", "-n", "5")
    _assert_clean(r.out)
    assert "\\x1b" in r.out and "workspace.deleted" in r.out


def test_show_escapes(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    _hostile_records(home)
    r = cli("audit", "show", "3")
    assert r.code == 0
    _assert_clean(r.out)
    assert "\\u202e" in r.out and "\\x1b" in r.out
    assert len(r.out.splitlines()) == 13  # one line per field


def test_json_stays_json_and_escapes_bidi(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    _hostile_records(home)
    for args in (("audit", "--json", "-n", "5"), ("audit", "show", "3", "--json")):
        r = cli(*args)
        _assert_clean(r.out)
        rec = r.ndjson()[-1] if "show" not in args else r.json()
        assert rec["action"] == FORGED_ACTION and rec["actor"]["email"] == HOSTILE_EMAIL.lower()


def test_follow_escapes(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "audit", "-f", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        first = proc.stdout.readline()
        assert b"workspace.created" in first
        _hostile_records(home)
        line = proc.stdout.readline().decode()
        _assert_clean(line)
        assert line.count("\t") == 7 and "\\x1b[2K\\r999" in line
    finally:
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_hostile_action_name_through_the_provider(home, cli):
    """The review's attack: an anonymous POST whose action name rewrites the operator's screen."""
    from starlette.testclient import TestClient

    from botctl.provider.app import create_app

    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    with TestClient(create_app(str(home.path), refresh_interval=3600)) as client:
        path = "/v1/workspaces/acme/actions/%1B%5B2K%0D999%20ok%E2%80%AE%1B%5D0%3Bpwned%07"
        r = client.post(path, json={"params": {}, "request_id": "r1"})
        assert r.json()["body"]["error"]["code"] == "unknown_action"
    for args in (("audit",), ("audit", "show", "3"), ("audit", "--json")):
        out = cli(*args).out
        _assert_clean(out)
        assert "999" in out or args == (
            "audit",
        )  # the name is kept (escaped) in the detail, not as the action


def test_escape_function():
    from botctl.cli.output import escape

    assert escape("plain text, ünïcödé, 日本") == "plain text, ünïcödé, 日本"
    assert escape("a\tb\nc\rd\x1b[0m\x00\x7f\x85\x9b") == "a\\tb\\nc\\rd\\x1b[0m\\x00\\x7f\\x85\\x9b"
    for ch, shown in (
        ("\u202a", "\\u202a"),
        ("\u202e", "\\u202e"),
        ("\u2066", "\\u2066"),
        ("\u2069", "\\u2069"),
        ("\u200e", "\\u200e"),
        ("\u200f", "\\u200f"),
        ("\u061c", "\\u061c"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        assert escape(f"x{ch}y") == f"x{shown}y"


def test_anchors_across_a_sealed_break(logged, cli, tmp_path):
    """A sealed break keeps older anchors usable for what it put on record, and only for that."""
    anchors = tmp_path / "anchors.jsonl"
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0  # at 6
    _grow(cli, logged, 2)  # 7, 8
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0  # at 8
    _sql(logged.audit_db, "DELETE FROM records WHERE seq >= 7")  # lose 7 and 8 (checkpoint still 8)
    assert (
        cli("audit", "seal-break", "--reason", "restored an older audit.db", "--yes").code == 0
    )  # seal at 7
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 0 and v["anchors"] == 2, v
    assert any("record 8 was lost in the break sealed at record 7" in n for n in v["notes"])
    _grow(cli, logged, 3)  # 8, 9, 10 (new records)
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0  # at 10, after the seal
    assert _verify(cli, "--anchor", str(anchors))[0] == 0
    # A rollback after the seal is caught as before, by the anchor made after it.
    _roll_back(logged, 9, _old_checkpoint(logged, 9))
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 10 and "record 10" in v["problem"]


def test_a_seal_does_not_excuse_losses_it_did_not_record(logged, cli, tmp_path):
    """Rolled back past the checkpoint too (an older checkpoint restored), then sealed: the anchor beyond
    what the seal says was expected still fails."""
    anchors = tmp_path / "anchors.jsonl"
    _grow(cli, logged, 2)  # 7, 8
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0  # at 8
    _roll_back(logged, 6, _old_checkpoint(logged, 6))  # checkpoint back to 6: nothing looks wrong
    _sql(logged.audit_db, "DELETE FROM records WHERE seq = 6")  # ... then a visible truncation
    assert cli("audit", "seal-break", "--reason", "tail lost", "--yes").code == 0  # expected 6, found 5
    code, v = _verify(cli, "--anchor", str(anchors))
    assert code == 10 and "record 8" in v["problem"]


@pytest.mark.slow
def test_real_daemon_fails_closed_on_a_broken_chain(tmp_path):
    """Real supervisor, provider and edge: a visitor gets a 5xx with a stable code, never an unrecorded answer."""
    import socket

    import httpx

    from botctl import crypto, daemon
    from botctl.home import Home

    def port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    env = {
        **os.environ,
        "BOTCTL_HOME": str(tmp_path / "home"),
        "BOTCTL_NO_KEYRING": "1",
        "BOTCTL_MASTER_KEY": base64.b64encode(crypto.new_key()).decode(),
    }

    def sh(*args):
        return subprocess.run(
            [sys.executable, "-m", "botctl", *args], env=env, capture_output=True, text=True, timeout=60
        )

    assert sh("workspace", "create", "acme", "--plan", "pro").returncode == 0
    edge = port()
    r = sh("daemon", "start", "--port", str(edge), "--metrics-port", str(port()))
    assert r.returncode == 0, r.stderr
    home = Home(tmp_path / "home")
    try:
        url = f"http://127.0.0.1:{edge}/v1/workspaces/acme/actions/stripe.list_my_invoices"
        assert httpx.post(url, json={"params": {}}, timeout=30).json()["error"]["code"] == "identity_required"
        _sql(home.audit_db, "DELETE FROM records WHERE seq = (SELECT max(seq) FROM records)")
        for _ in range(3):
            r = httpx.post(url, json={"params": {}}, timeout=30)
            assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable", r.text
        sock = Path(json.loads((home.path / "run" / "state.json").read_text())["socket"])
        st = daemon._uds_get(sock, "/v1/status")["audit"]
        assert st["chain"] == "broken" and st["refused"] == 3 and "tail deleted" in st["problem"]
        assert "the audit log is broken" in sh("daemon", "status").stderr
        assert json.loads(sh("daemon", "status", "--json").stdout)["audit_chain"]["chain"] == "broken"
        log = (home.path / "run" / "daemon.log").read_text()
        assert log.count("audit log refuses new records") == 1
        assert sh("audit", "seal-break", "--reason", "test", "--yes").returncode == 0
        assert httpx.post(url, json={"params": {}}, timeout=30).json()["error"]["code"] == "identity_required"
        assert daemon._uds_get(sock, "/v1/status")["audit"]["chain"] == "ok"
        assert sh("audit", "verify").returncode == 0
    finally:
        sh("daemon", "stop")
