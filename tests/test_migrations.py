import sqlite3

import pytest

from botctl import store

pytestmark = pytest.mark.sqlite_only  # SQLite files of older schemas (PostgreSQL: tests/test_postgres.py)


def _v1_home(home):
    """A home as botctl's first schema left it: one workspace, no audit tables in the vault yet."""
    home.ensure()
    conn = store.connect(home.vault_db, secure_delete=True)
    store.migrate(conn, store.VAULT_MIGRATIONS, what="t", target=1)
    conn.execute(
        "INSERT INTO workspaces (id, name, plan, origins, created_at, updated_at) "
        "VALUES ('ws_old', 'legacy', 'pro', '[]', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')"
    )
    conn.close()


def test_older_home_is_upgraded(home, cli):
    _v1_home(home)
    assert sqlite3.connect(home.vault_db).execute("PRAGMA user_version").fetchone()[0] == 1
    r = cli("workspace", "list", "--json")
    assert r.code == 0, r.err
    assert [w["name"] for w in r.json()] == ["legacy"]
    c = sqlite3.connect(home.vault_db)
    assert c.execute("PRAGMA user_version").fetchone()[0] == len(store.VAULT_MIGRATIONS)
    assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit_checkpoint'").fetchone()[0] == 1


def test_newer_vault_refused_and_untouched(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    c = sqlite3.connect(home.vault_db)
    c.execute("PRAGMA user_version = 99")
    c.close()
    before = home.vault_db.read_bytes()
    for args in (("workspace", "list"), ("workspace", "create", "b2"), ("vault", "status"), ("init",)):
        r = cli(*args)
        assert r.code == 6, (args, r.err)
        assert "schema version 99" in r.err and "Upgrade botctl" in r.err
        assert "Traceback" not in r.err
    assert sqlite3.connect(home.vault_db).execute("PRAGMA user_version").fetchone()[0] == 99
    assert home.vault_db.read_bytes() == before


def test_newer_audit_db_refused(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    c = sqlite3.connect(home.audit_db)
    c.execute("PRAGMA user_version = 7")
    c.close()
    r = cli("audit")
    assert r.code == 6 and "audit.db has schema version 7" in r.err


def test_migrations_are_idempotent_across_processes(home):
    home.ensure()
    a = store.connect(home.vault_db)
    b = store.connect(home.vault_db)
    assert store.migrate(a, store.VAULT_MIGRATIONS, what="a") == len(store.VAULT_MIGRATIONS)
    assert store.migrate(b, store.VAULT_MIGRATIONS, what="b") == len(store.VAULT_MIGRATIONS)
