"""Crypto-shredding while a reader holds a snapshot (hostile review): a read transaction open across
`workspace delete`, as the daemon or a `.backup` holds one, used to leave the deleted workspace's
wrapped key on disk, and its HS256 identity secret was recovered from it with the master key."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

pytestmark = (
    pytest.mark.sqlite_only
)  # reads the SQLite files and their WAL (PostgreSQL: tests/test_postgres.py)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "botctl", *args], capture_output=True, text=True, timeout=60)


def on_disk(home, blob: bytes) -> list[str]:
    return [p.name for p in home.iterdir() if p.name.startswith("vault.db") and blob in p.read_bytes()]


def test_a_reader_cannot_keep_a_deleted_workspace_key_on_disk(isolated, monkeypatch):
    home = isolated
    assert run("init").returncode == 0
    assert run("workspace", "create", "doomed").returncode == 0
    assert run("identity", "rotate", "-w", "doomed").returncode == 0
    assert run("workspace", "create", "keeper").returncode == 0
    vault_db = home / "vault.db"
    con = sqlite3.connect(vault_db)
    (wrapped,) = con.execute(
        "SELECT k.wrapped FROM workspace_keys k JOIN workspaces w ON w.id = k.workspace_id "
        "WHERE w.name = 'doomed'"
    ).fetchone()
    con.close()
    assert on_disk(home, wrapped)

    reader = sqlite3.connect(vault_db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM workspace_keys").fetchone()  # a snapshot from before the delete
    try:
        r = run("workspace", "delete", "doomed", "--yes", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["shredding"] == "pending"
        assert "shredding is pending" in r.stderr and "Traceback" not in r.stderr
        doctor = json.loads(run("doctor", "--json").stdout)
        assert any(f["check"] == "shredding" and f["status"] == "warn" for f in doctor["findings"])
    finally:
        reader.execute("COMMIT")
        reader.close()

    # The next command that opens the vault finishes it: the key's bytes are gone from every file.
    assert run("workspace", "create", "later").returncode == 0
    assert on_disk(home, wrapped) == []
    doctor = json.loads(run("doctor", "--json").stdout)
    assert not any(f["check"] == "shredding" for f in doctor["findings"])


def test_without_a_reader_shredding_is_complete_at_once(isolated):
    home = isolated
    run("init")
    run("workspace", "create", "doomed")
    con = sqlite3.connect(home / "vault.db")
    (wrapped,) = con.execute("SELECT wrapped FROM workspace_keys").fetchone()
    con.close()
    r = run("workspace", "delete", "doomed", "--yes", "--json")
    assert json.loads(r.stdout)["shredding"] == "complete" and "pending" not in r.stderr
    assert on_disk(home, wrapped) == []
