"""The independent verifier (tools/verify-audit.mjs, Node's standard library only) against real logs:
it must agree with `botctl audit verify` on intact, edited, truncated, reordered and forged logs, and the
RFC 8785 canonical form must be the same in both languages."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import sqlite_utils

from botctl import audit
from botctl.audit.jcs import canonicalize, es_number

REPO = Path(__file__).resolve().parent.parent

NODE = shutil.which("node")
VERIFIER = REPO / "tools" / "verify-audit.mjs"
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture
def logged(home, cli):
    """A real log: workspace changes plus records with awkward values (floats, non-BMP keys, controls)."""
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    from botctl.session import Session

    with Session(home) as a:
        a.audit(
            "test.awkward",
            detail={
                "latency_ms": 12.5,
                "tiny": 1e-7,
                "big": 1e21,
                "neg": -0.0,
                "ratio": 1 / 3,
                "\U0001f600": "non-BMP key",
                "\ufb01": "BMP key above",
                "ctl": "tab\there\u0001\u007f\u2028",
                "huge_int": 2**60,
                "nested": [{"b": 2, "a": [None, True, False, 0.1]}],
            },
        )
    for plan in ("business", "free"):
        assert cli("workspace", "set-plan", "acme", plan).code == 0
    assert cli("workspace", "create", "beta").code == 0
    return home


@pytest.fixture
def key_file(logged, cli, tmp_path):
    path = tmp_path / "audit.key"
    r = cli("audit", "export-key", "--out", str(path))
    assert r.code == 0, r.err
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path


def _botctl_verdict(cli, anchors: str | None = None) -> dict:
    r = cli("audit", "verify", "--json", *(["--anchor", anchors] if anchors else []))
    v = r.json()
    assert r.code == (0 if v["ok"] else 10)
    return v


def _node_verdict(
    cli, key_file, tmp_path, *, lines_edit=None, anchors: str | None = None
) -> tuple[int, dict]:
    r = cli("audit", "export", "--format", "ndjson", "--checkpoint")
    assert r.code == 0, r.err
    text = r.out
    if lines_edit is not None:
        text = lines_edit(text)
    path = tmp_path / "export.ndjson"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [NODE, str(VERIFIER), "--json", *(["--anchors", anchors] if anchors else []), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"BOTCTL_AUDIT_KEY_FILE": str(key_file), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode in (0, 10), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _agree(cli, key_file, tmp_path, anchors: str | None = None) -> dict:
    ours = _botctl_verdict(cli, anchors)
    code, theirs = _node_verdict(cli, key_file, tmp_path, anchors=anchors)
    assert code == (0 if theirs["ok"] else 10)
    for field in (
        "ok",
        "first_bad_seq",
        "records",
        "head_seq",
        "head_hash",
        "checkpoint_seq",
        "problem",
        "anchors",
    ):
        assert theirs[field] == ours[field], (field, theirs, ours)
    return ours


def test_intact_log_agrees(logged, key_file, cli, tmp_path):
    key_exported = cli("audit", "-n", "1", "--json").ndjson()[0]
    assert key_exported["event"] == "audit.key_exported" and key_exported["v"] == 2
    v = _agree(cli, key_file, tmp_path)
    assert v["ok"] and v["records"] == 7


def test_edited_record_agrees(logged, key_file, cli, tmp_path):
    t = sqlite_utils.Database(logged.audit_db)["records"]
    body = json.loads(t.get(3)["body"])
    body["outcome"] = "denied"
    t.update(3, {"body": canonicalize(body)})
    v = _agree(cli, key_file, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 3


def test_whitespace_only_edit_agrees(logged, key_file, cli, tmp_path):
    """Same JSON value, other bytes: both verifiers check the stored bytes, so both refuse it."""
    t = sqlite_utils.Database(logged.audit_db)["records"]
    t.update(2, {"body": json.dumps(json.loads(t.get(2)["body"]), sort_keys=True)})
    v = _agree(cli, key_file, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 2


def test_truncated_tail_agrees(logged, key_file, cli, tmp_path):
    t = sqlite_utils.Database(logged.audit_db)["records"]
    t.delete(7)
    t.delete(6)
    v = _agree(cli, key_file, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 6 and "truncated" in v["problem"]


def test_reordered_records_agree(logged, key_file, cli, tmp_path):
    t = sqlite_utils.Database(logged.audit_db)["records"]
    r2, r4 = t.get(2), t.get(4)
    t.update(2, {k: r4[k] for k in ("body", "prev_hash", "hash")})
    t.update(4, {k: r2[k] for k in ("body", "prev_hash", "hash")})
    v = _agree(cli, key_file, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 2


def test_deleted_middle_agrees(logged, key_file, cli, tmp_path):
    sqlite_utils.Database(logged.audit_db)["records"].delete(3)
    v = _agree(cli, key_file, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 3 and "missing" in v["problem"]


def test_forged_checkpoint_agrees(logged, key_file, cli, tmp_path):
    sqlite_utils.Database(logged.vault_db)["audit_checkpoint"].update(1, {"seq": 3})
    v = _agree(cli, key_file, tmp_path)
    assert not v["ok"] and "checkpoint" in v["problem"]


def test_reordered_lines_of_an_export_refused(logged, key_file, cli, tmp_path):
    def swap(text: str) -> str:
        lines = text.split("\n")  # not splitlines(): U+2028 in a record is not a line break in NDJSON
        lines[1], lines[2] = lines[2], lines[1]
        return "\n".join(lines)

    code, v = _node_verdict(cli, key_file, tmp_path, lines_edit=swap)
    assert code == 10 and v["first_bad_seq"] == 2 and "missing" in v["problem"]


def test_dropped_checkpoint_line_is_noted_not_trusted(logged, key_file, cli, tmp_path):
    code, v = _node_verdict(
        cli, key_file, tmp_path, lines_edit=lambda t: "\n".join(t.split("\n")[:-2]) + "\n"
    )
    assert code == 0 and any("truncation" in n for n in v["notes"])


def test_wrong_key_refuses_every_record(logged, key_file, cli, tmp_path):
    key_file.write_text("11" * 32)
    code, v = _node_verdict(cli, key_file, tmp_path)
    assert code == 10 and v["first_bad_seq"] == 7  # the checkpoint is checked first, as botctl does


def test_format_1_records_keep_verifying(home, cli, tmp_path):
    """Records written before RFC 8785 (no "v") verify by their stored bytes in both verifiers."""
    from botctl.session import Session

    with Session(home) as a:
        legacy = {
            k: v
            for k, v in audit.make_record("legacy.event", detail={"x": 1.0, "y": 1e-7}).items()
            if k != "v"
        }
        a.writer.append(legacy)
        a.audit("new.event", detail={"x": 1.0})
    rows = list(sqlite_utils.Database(home.audit_db)["records"].rows_where(order_by="seq"))
    assert '"x":1.0' in rows[-2]["body"] and '"v"' not in rows[-2]["body"]  # Python's own rendering
    assert '"detail":{"x":1}' in rows[-1]["body"] and rows[-1]["body"].startswith('{"action":null')
    key = tmp_path / "k"
    assert cli("audit", "export-key", "--out", str(key)).code == 0
    v = _agree(cli, key, tmp_path)
    assert v["ok"]


def test_key_never_taken_from_argv_and_file_never_overwritten(logged, key_file, cli, tmp_path):
    proc = subprocess.run(
        [NODE, str(VERIFIER), "--key", "00" * 32, str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and "unknown option --key" in proc.stderr
    r = cli("audit", "export-key", "--out", str(key_file))
    assert r.code == 2 and "already exists" in r.err


def test_jcs_numbers_match_ecmascript():
    rng = random.Random(19)
    values = [1e21, 1e20, 123e-20, 1e-7, 1e-6, 5e-324, 1.7976931348623157e308, 0.1, 100.0, 2.0**53, 1 / 3]
    while len(values) < 3000:
        x = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if x == x and abs(x) != float("inf"):
            values.append(x)
    proc = subprocess.run(
        [
            NODE,
            "-e",
            "const v = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
            "process.stdout.write(JSON.stringify(v.map(String)))",
        ],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(proc.stdout) == [es_number(v) for v in values]


def test_jcs_objects_match_the_node_verifier(tmp_path):
    """Member order by UTF-16 code units (U+1F600 sorts before U+FB01), escapes as JSON.stringify."""
    value = {
        "\ufb01": 1,
        "\U0001f600": 2,
        "a": '\u0000\b\t\n\f\r\u001f"\\\u007f\u2028é',
        "b": [1.5, -0.0, None],
        "c": {"z": True, "y": False},
    }
    ours = canonicalize(value)
    assert ours.index("\U0001f600") < ours.index("\ufb01")
    script = tmp_path / "c.mjs"
    script.write_text(
        f"import {{ canonicalize }} from {json.dumps(VERIFIER.as_uri())};\n"
        "process.stdout.write(canonicalize(JSON.parse(process.argv[2])));\n"
    )
    js = subprocess.run([NODE, str(script), json.dumps(value)], capture_output=True, text=True, timeout=30)
    assert js.returncode == 0, js.stderr
    assert js.stdout == ours


# -- the same agreement when the home keeps its tables in PostgreSQL -------------------------------------


@pytest.fixture
def pg_home(home, cli, pg_url):
    assert cli("init", "--database", pg_url).code == 0
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    assert cli("workspace", "set-plan", "acme", "business").code == 0
    return home, pg_url


def test_postgresql_log_agrees_intact_edited_truncated(pg_home, cli, tmp_path):
    import psycopg

    home, url = pg_home
    key = tmp_path / "pg.key"
    assert cli("audit", "export-key", "--out", str(key)).code == 0
    assert _agree(cli, key, tmp_path)["ok"]
    with psycopg.connect(url, autocommit=True) as db:
        body = json.loads(db.execute("SELECT body FROM records WHERE seq = 2").fetchone()[0])
        body["outcome"] = "denied"
        db.execute("UPDATE records SET body = %s WHERE seq = 2", (canonicalize(body),))
    v = _agree(cli, key, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 2
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DELETE FROM records WHERE seq >= 2")
    v = _agree(cli, key, tmp_path)
    assert not v["ok"] and v["first_bad_seq"] == 2 and "truncated" in v["problem"]


def test_anchor_files_agree_on_rollback_and_forgery(logged, key_file, cli, tmp_path):
    """audit.db and vault.db restored together from a backup agree with each other; only the anchor, kept
    elsewhere, shows the rollback, and both verifiers say so in the same words."""
    import sqlite3

    backup = tmp_path / "backup"
    backup.mkdir()
    for name in ("audit.db", "vault.db"):
        src, dst = sqlite3.connect(logged.path / name), sqlite3.connect(backup / name)
        src.backup(dst)
        src.close()
        dst.close()
    assert cli("workspace", "create", "gamma").code == 0
    anchors = tmp_path / "anchors.jsonl"
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0
    v = _agree(cli, key_file, tmp_path, anchors=str(anchors))
    assert v["ok"] and v["anchors"] == 1
    for name in ("audit.db", "vault.db"):
        for suffix in ("-wal", "-shm"):
            (logged.path / (name + suffix)).unlink(missing_ok=True)
        shutil.copyfile(backup / name, logged.path / name)
    assert _botctl_verdict(cli)["ok"]  # without the anchor the rollback is invisible
    v = _agree(cli, key_file, tmp_path, anchors=str(anchors))
    assert not v["ok"] and "rolled back or truncated" in v["problem"]
    line = json.loads(anchors.read_text())
    line["hash"] = "0" * 64
    anchors.write_text(json.dumps(line) + "\n")
    v = _agree(cli, key_file, tmp_path, anchors=str(anchors))
    assert not v["ok"] and "is not signed by this vault's audit key" in v["problem"]


def test_anchor_lost_in_a_sealed_break_agrees(logged, key_file, cli, tmp_path):
    """A tail deleted, then the break sealed: an anchor naming a lost record is on record as lost in both
    verifiers (a note, not a failure); an anchor the seal does not account for still fails in both."""
    anchors = tmp_path / "anchors.jsonl"
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0  # names the head, record 7
    sqlite_utils.Database(logged.audit_db).execute("DELETE FROM records WHERE seq = 7")
    sqlite_utils.Database(logged.audit_db).conn.commit()
    assert cli("audit", "seal-break", "--reason", "tail lost in a restore", "--yes").code == 0
    v = _agree(cli, key_file, tmp_path, anchors=str(anchors))
    assert (
        v["ok"]
        and v["anchors"] == 1
        and any("was lost in the break sealed at record 7" in n for n in v["notes"])
    )
    _, theirs = _node_verdict(cli, key_file, tmp_path, anchors=str(anchors))
    assert any("was lost in the break sealed at record 7" in n for n in theirs["notes"])
    # An anchor taken after the seal, for a record the log no longer has: no seal explains that loss.
    assert cli("workspace", "create", "delta").code == 0
    assert cli("audit", "anchor", "--out", str(anchors)).code == 0
    sqlite_utils.Database(logged.audit_db).execute("DELETE FROM records WHERE seq >= 8")
    sqlite_utils.Database(logged.audit_db).conn.commit()
    v = _agree(cli, key_file, tmp_path, anchors=str(anchors))
    assert not v["ok"]
