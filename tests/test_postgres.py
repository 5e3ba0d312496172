"""PostgreSQL as the home's database (issue #14), on the real server at 127.0.0.1:5432: each test makes its
own database (`pg_url`) and drops it. The rest of the storage-facing suite runs on PostgreSQL too with
BOTCTL_TEST_DATABASE=postgresql (`make test` does both)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from botctl import store
from botctl.home import Home
from cluster_kit import sql


def botctl(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 90):
    return subprocess.run(
        [sys.executable, "-m", "botctl", *args],
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture
def pg_home(home, pg_url, cli):
    """A home initialised with --database (its URL stored in the home), nothing else."""
    r = cli("init", "--database", pg_url, "--json")
    assert r.code == 0, r.err
    assert r.json()["database"]["backend"] == "postgresql"
    return home


# -- choosing the backend ---------------------------------------------------------------------------------


def test_init_database_stores_the_url_and_every_command_uses_it(pg_home, pg_url, cli):
    assert (pg_home.path / "database.url").read_text().strip() == pg_url
    assert (pg_home.path / "database.url").stat().st_mode & 0o777 == 0o600
    assert not pg_home.vault_db.exists() and not pg_home.audit_db.exists()
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    assert sql(pg_url, "SELECT name, plan FROM workspaces") == [("acme", "pro")]
    st = cli("vault", "status", "--json").json()
    assert st["database"]["backend"] == "postgresql" and st["database"]["server_version"].startswith("15.")
    assert st["schema_version"] == len(store.VAULT_MIGRATIONS) and st["workspaces"] == 1
    doctor = cli("doctor", "--json").json()["findings"]
    db = next(f for f in doctor if f["check"] == "database")
    assert db["status"] == "ok" and "postgresql 15." in db["message"] and "schema vault" in db["message"]
    assert cli("init").code == 0  # re-running changes nothing
    assert sql(pg_url, "SELECT count(*) FROM workspaces") == [(1,)]


def test_a_password_in_the_url_is_never_stored(home, pg_url, cli):
    leaky = pg_url.replace("postgres@", "postgres:hunter2-not-stored@")
    r = cli("init", "--database", leaky)
    assert r.code == 2 and "password" in r.err and "hunter2" not in r.err + r.out and "Traceback" not in r.err
    assert not (home.path / "database.url").exists()
    r = cli("init", "--database", pg_url + "?password=hunter2-not-stored")
    assert r.code == 2 and "hunter2" not in r.err + r.out
    assert not (home.path / "database.url").exists()


def test_the_password_comes_from_a_passfile_or_a_systemd_credential(home, pg_url, tmp_path, cli, monkeypatch):
    passfile = tmp_path / "pgpass"
    passfile.write_text("127.0.0.1:5432:*:postgres:from-the-passfile\n")
    passfile.chmod(0o600)
    assert cli("init", "--database", f"{pg_url}?passfile={passfile}").code == 0
    assert cli("workspace", "create", "acme").code == 0
    # A systemd credential: missing CREDENTIALS_DIRECTORY is a clear error, not a traceback.
    monkeypatch.setenv("BOTCTL_DATABASE_URL", f"{pg_url}?credential=botctl-db")
    r = cli("workspace", "create", "beta")
    assert r.code == 2 and "CREDENTIALS_DIRECTORY" in r.err and "Traceback" not in r.err
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "botctl-db").write_text("from-the-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert cli("workspace", "create", "beta").code == 0
    assert {r[0] for r in sql(pg_url, "SELECT name FROM workspaces")} == {"acme", "beta"}


@pytest.mark.sqlite_only  # no database of its own: the URL it gives leads nowhere
def test_an_unreachable_server_is_one_clear_line(home, cli):
    r = cli("init", "--database", "postgresql://postgres@127.0.0.1:1/nowhere")
    assert (
        r.code != 0
        and r.err.startswith("error: cannot connect to the PostgreSQL database")
        and "Traceback" not in r.err
    )


@pytest.mark.sqlite_only  # the SQLite path is the point
def test_the_sqlite_path_never_imports_the_driver(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    probe = (
        "import sys; from botctl.cli.main import run\ntry:\n    run(['workspace', 'list', '--json'])\n"
        "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith('psycopg')), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "[]"


# -- the whole path: init → connect → action → audit verify ---------------------------------------------


def test_from_init_to_an_audited_action_on_postgresql(pg_home, pg_url, cli, sandbox):
    creds = sandbox.credentials()
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    r = cli(
        "connect",
        "stripe",
        "-w",
        "acme",
        "--sandbox",
        sandbox.url,
        "--api-key-stdin",
        input=creds["stripe"]["api_key"] + "\n",
    )
    assert r.code == 0, r.err
    r = cli(
        "actions", "run", "stripe.list_my_invoices", "-w", "acme", "--as-email", "ada@example.com", "--json"
    )
    assert r.code == 0, r.err
    events = [rec["event"] for rec in cli("audit", "--json", "-n", "50").ndjson()]
    assert events[-3:] == ["workspace.created", "connection.created", "action.run"]
    v = cli("audit", "verify", "--json").json()
    assert v["ok"] and v["records"] == len(events) and v["checkpoint_seq"] == v["head_seq"]
    # The rows are there, in PostgreSQL: ciphertext as bytea, the chain in `records`.
    (blob,) = sql(pg_url, "SELECT ciphertext FROM secrets WHERE field = 'api_key'")[0]
    assert isinstance(blob, bytes) and creds["stripe"]["api_key"].encode() not in blob


def test_a_change_and_its_record_commit_together(pg_home, pg_url, cli):
    """On PostgreSQL the change, its records and the checkpoint are one transaction: a chain that refuses
    the record (a forged checkpoint) leaves no workspace behind."""
    assert cli("workspace", "create", "acme").code == 0
    sql(pg_url, "UPDATE audit_checkpoint SET mac = repeat('0', 64)")
    r = cli("workspace", "create", "beta")
    assert r.code == 11 and "checkpoint" in r.err
    assert sql(pg_url, "SELECT name FROM workspaces") == [("acme",)]
    assert sql(pg_url, "SELECT count(*) FROM records") == [(2,)]


def test_tampering_in_postgresql_is_detected(pg_home, pg_url, cli):
    for name in ("acme", "beta", "gamma"):
        assert cli("workspace", "create", name).code == 0
    assert cli("audit", "verify").code == 0
    sql(pg_url, "UPDATE records SET body = replace(body, 'beta', 'evil') WHERE seq = 3")
    assert sql(pg_url, "SELECT workspace FROM records WHERE seq = 3") == [
        ("evil",)
    ]  # generated from the body
    r = cli("audit", "verify", "--json")
    assert r.code == 10 and r.json()["first_bad_seq"] == 3
    sql(pg_url, "UPDATE records SET body = replace(body, 'evil', 'beta') WHERE seq = 3")
    sql(pg_url, "DELETE FROM records WHERE seq = 4")  # the tail
    r = cli("audit", "verify", "--json")
    assert r.code == 10 and "truncated" in r.json()["problem"]
    assert cli("workspace", "create", "delta").code == 11  # a writer refuses the broken head too


def test_a_newer_schema_is_refused_with_exit_6(pg_home, pg_url, cli):
    sql(pg_url, "UPDATE schema_versions SET version = 99 WHERE name = 'vault'")
    for args in (("workspace", "list"), ("workspace", "create", "acme"), ("vault", "status")):
        r = cli(*args)
        assert r.code == 6 and "schema version 99" in r.err, (args, r.err)
    sql(pg_url, "UPDATE schema_versions SET version = 99 WHERE name = 'audit'")
    sql(pg_url, "UPDATE schema_versions SET version = %s WHERE name = 'vault'", len(store.VAULT_MIGRATIONS))
    assert cli("audit").code == 6


def test_migrations_are_numbered_like_sqlites(pg_url, monkeypatch):
    """Each migration step on its own, as an older home would be upgraded one version at a time."""
    from botctl.postgres.connection import connect

    conn = connect(pg_url)
    try:
        for target in range(1, len(store.VAULT_MIGRATIONS) + 1):
            assert store.migrate(conn, store.VAULT_MIGRATIONS, what="x", target=target) == target
            assert store.schema_version(conn) == target
        conn.schema = "audit"
        assert store.migrate(conn, store.AUDIT_MIGRATIONS, what="x") == len(store.AUDIT_MIGRATIONS)
    finally:
        conn.close()
    tables = {r[0] for r in sql(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    from botctl.dbcopy import ORDER

    assert tables == set(ORDER["vault"]) | set(ORDER["audit"]) | {"schema_versions"}
    (index,) = sql(pg_url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'knowledge_fts_tsv'")[0]
    assert "USING gin (tsv)" in index


def test_the_request_id_filter_has_its_index(pg_home, pg_url, cli):
    assert cli("workspace", "create", "acme").code == 0
    # The expression index of audit migration 2 works through the json_extract SQL function (IMMUTABLE).
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("SET enable_seqscan = off")
        rows = c.execute(
            "EXPLAIN SELECT seq FROM records WHERE json_extract(body, '$.request_id') = %s", ("req_X",)
        ).fetchall()
    assert any("records_request_id" in r[0] for r in rows), rows


# -- concurrency: one chain order -------------------------------------------------------------------------


def test_concurrent_writers_keep_one_chain(pg_home, pg_url):
    """Four processes appending at once: contiguous seqs, every record chained, verify passes."""
    script = (
        "import sys\nfrom botctl.session import Session\nfrom botctl.home import Home\n"
        "with Session(Home.resolve(None)) as a:\n"
        "    for i in range(25):\n        a.audit('test.concurrent', detail={'writer': sys.argv[1], 'i': i})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)]) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    seqs = [r[0] for r in sql(pg_url, "SELECT seq FROM records ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 1 + 100
    v = botctl("audit", "verify", "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["checkpoint_seq"] == len(seqs)


# A session of this database whose last statement was the follower's LISTEN (it then only waits).
_LISTENING = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s"


def _until(condition, what: str, timeout: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_audit_follow_is_woken_by_notify(pg_home, pg_url, cli):
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "audit", "-f", "--json", "--event", "test.follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        from botctl.postgres.connection import NOTIFY_CHANNEL
        from botctl.session import Session

        _until(lambda: sql(pg_url, _LISTENING, f"LISTEN {NOTIFY_CHANNEL}") != [(0,)], "the follower listens")
        with Session(pg_home) as app:  # a first record, read by the follower: it is past its first read
            app.audit("test.follow", detail={"n": 1})
        assert json.loads(_readline(proc, 10))["detail"] == {"n": 1}
        with Session(pg_home) as app:
            sent = time.monotonic()
            app.audit("test.follow", detail={"n": 2})
        line = _readline(proc, 10)
        waited = time.monotonic() - sent
        assert json.loads(line)["detail"] == {"n": 2}
        # Not the 5 s fallback wait: the NOTIFY woke it (generous bound for a loaded machine).
        assert waited < 4.0, waited
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    assert out and out[0], "audit -f printed nothing"
    return out[0]


# -- crypto-shredding and secrets at rest -----------------------------------------------------------------


def test_delete_shreds_the_workspace_key_and_vacuums(pg_home, pg_url, cli):
    assert cli("workspace", "create", "acme").code == 0
    assert cli("identity", "rotate", "-w", "acme").code == 0
    before = sql(pg_url, "SELECT pg_relation_filenode('workspace_keys')")[0][0]
    (wrapped,) = sql(pg_url, "SELECT wrapped FROM workspace_keys")[0]
    assert cli("workspace", "delete", "acme", "--yes").code == 0
    _until_shredded(pg_url, cli)
    assert sql(pg_url, "SELECT count(*) FROM workspace_keys") == [(0,)]
    assert sql(pg_url, "SELECT count(*) FROM secrets") == [(0,)]
    # VACUUM FULL rewrote the table into a new file: the dead row is not in the table's storage any more.
    assert sql(pg_url, "SELECT pg_relation_filenode('workspace_keys')")[0][0] != before
    data = _datafile(pg_url, "workspace_keys")
    if data is not None:
        assert bytes(wrapped) not in data


def _until_shredded(url: str, cli) -> None:  # noqa: ANN001
    """Opening the vault finishes a pending shred once PostgreSQL can drop the dead rows; other suites share
    this server (their snapshots delay it), so a few opens may be needed, each trying for up to 1 s."""
    for _ in range(30):
        if sql(url, "SELECT count(*) FROM meta WHERE key = 'shred_pending'") == [(0,)]:
            return
        assert cli("audit", "verify").code == 0
        time.sleep(0.5)
    raise AssertionError("the shred stayed pending")


def _datafile(url: str, table: str) -> bytes | None:
    path = sql(url, f"SELECT current_setting('data_directory') || '/' || pg_relation_filepath('{table}')")[0][
        0
    ]
    if not os.access(path, os.R_OK):
        return None
    with open(path, "rb") as f:
        return f.read()


def test_a_snapshot_held_across_a_delete_cannot_keep_the_key(pg_home, pg_url, cli):
    """Attack: a session holds a snapshot (REPEATABLE READ) that still sees the workspace key while it is
    deleted. VACUUM FULL would copy the row it can see into the new file; the delete waits, then leaves the
    shred pending (doctor says so), and the next open finishes it once the snapshot is gone."""
    assert cli("workspace", "create", "acme").code == 0
    assert cli("identity", "rotate", "-w", "acme").code == 0
    (wrapped,) = sql(pg_url, "SELECT wrapped FROM workspace_keys")[0]
    reader = psycopg.connect(pg_url)  # not autocommit: its transaction stays open
    try:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert reader.execute("SELECT count(*) FROM workspace_keys").fetchone() == (1,)
        r = cli("workspace", "delete", "acme", "--yes")
        assert r.code == 0
        assert sql(pg_url, "SELECT count(*) FROM meta WHERE key = 'shred_pending'") == [(1,)]
        finding = next(f for f in cli("doctor", "--json").json()["findings"] if f["check"] == "shredding")
        assert finding["status"] == "warn"
    finally:
        reader.close()
    _until_shredded(pg_url, cli)
    data = _datafile(pg_url, "workspace_keys")
    if data is not None:
        assert bytes(wrapped) not in data


def test_a_dump_of_the_database_holds_only_ciphertext(pg_home, pg_url, cli, sandbox, tmp_path):
    """Every secret botctl stores (vendor credential, identity secret, OAuth client secrets) is searched for
    in pg_dump's output: only ciphertext may be there."""
    creds = sandbox.credentials()
    api_key = creds["stripe"]["api_key"]
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    assert (
        cli(
            "connect",
            "stripe",
            "-w",
            "acme",
            "--sandbox",
            sandbox.url,
            "--api-key-stdin",
            input=api_key + "\n",
        ).code
        == 0
    )
    identity = cli("identity", "rotate", "-w", "acme", "--json").json()["secret"]
    global_secret, ws_secret = "global-client-secret-" + "q" * 24, "workspace-client-secret-" + "z" * 24
    assert (
        cli(
            "oauth-app",
            "set",
            "hubspot",
            "--client-id",
            "cid-global",
            "--client-secret-stdin",
            input=global_secret + "\n",
        ).code
        == 0
    )
    assert (
        cli(
            "oauth-app",
            "set",
            "hubspot",
            "-w",
            "acme",
            "--client-id",
            "cid-ws",
            "--client-secret-stdin",
            input=ws_secret + "\n",
        ).code
        == 0
    )
    assert (
        cli("actions", "run", "stripe.list_my_invoices", "-w", "acme", "--as-email", "ada@example.com").code
        == 0
    )
    key = (pg_home.path / "master.key").read_text().strip()
    dump = subprocess.run(["pg_dump", "--no-owner", pg_url], capture_output=True, check=True).stdout
    assert b"CREATE TABLE public.secrets" in dump and b"cid-global" in dump  # the dump is the real thing
    for secret in (api_key, identity, global_secret, ws_secret, key):
        assert secret.encode() not in dump, secret[:6]
    import base64

    assert base64.b64decode(key) not in dump


# -- moving a home ----------------------------------------------------------------------------------------


def _sqlite_home_with_history(cli, sandbox):
    creds = sandbox.credentials()
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    assert (
        cli(
            "connect",
            "stripe",
            "-w",
            "acme",
            "--sandbox",
            sandbox.url,
            "--api-key-stdin",
            input=creds["stripe"]["api_key"] + "\n",
        ).code
        == 0
    )
    assert (
        cli("actions", "run", "stripe.list_my_invoices", "-w", "acme", "--as-email", "ada@example.com").code
        == 0
    )
    assert cli("identity", "rotate", "-w", "acme").code == 0
    return creds


def _chain(conn_rows):
    return [tuple(r) for r in conn_rows]


@pytest.mark.sqlite_only  # the source is a SQLite home
def test_db_copy_moves_a_sqlite_home_to_postgresql_with_the_chain_intact(
    home, pg_url, cli, sandbox, tmp_path
):
    _sqlite_home_with_history(cli, sandbox)
    (kb := tmp_path / "kb").mkdir()
    (kb / "faq.md").write_text("# Returns\n\nYou can return any item within 30 days for a full refund.\n")
    assert cli("knowledge", "add", "-w", "acme", str(kb / "faq.md")).code == 0
    import sqlite3

    src = (
        sqlite3.connect(home.audit_db)
        .execute("SELECT seq, body, prev_hash, hash FROM records ORDER BY seq")
        .fetchall()
    )
    r = cli("db", "copy", "--to", pg_url, "--switch", "--json")
    assert r.code == 0, r.err
    assert r.json()["records"] == len(src) and r.json()["switched"] is True
    copied = sql(
        pg_url, "SELECT seq, body, prev_hash, hash FROM records WHERE seq <= %s ORDER BY seq", len(src)
    )
    assert _chain(copied) == _chain(src)  # byte for byte
    assert not home.vault_db.exists() and (home.path / "vault.db.copied").exists()
    v = cli("audit", "verify", "--json").json()
    assert v["ok"] and v["records"] == len(src) + 1  # + database.switched, written on the copy
    assert cli("audit", "--json", "-n", "1").ndjson()[0]["event"] == "database.switched"
    # Everything works on the copy: the credential decrypts, knowledge answers, new ids do not collide.
    assert (
        cli("actions", "run", "stripe.list_my_invoices", "-w", "acme", "--as-email", "ada@example.com").code
        == 0
    )
    ans = cli("knowledge", "ask", "-w", "acme", "can I return an item for a refund?", "--json").json()
    assert "30 days" in json.dumps(ans)
    (kb / "more.md").write_text("# Shipping\n\nWe ship worldwide within 5 business days.\n")
    assert cli("knowledge", "add", "-w", "acme", str(kb / "more.md")).code == 0
    # And back: a SQLite copy of the PostgreSQL home verifies with the same key.
    back = tmp_path / "back"
    assert cli("db", "copy", "--to", f"sqlite:{back}").code == 0
    env = {
        "BOTCTL_HOME": str(back),
        "BOTCTL_DATABASE_URL": "",
        "BOTCTL_MASTER_KEY": (home.path / "master.key").read_text().strip(),
    }
    r = botctl("audit", "verify", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr


def test_db_copy_refuses_a_non_empty_target_and_leaves_it_untouched(home, pg_url, cli):
    assert cli("init").code == 0
    sql(pg_url, "CREATE TABLE someone_elses (x int)")
    r = cli("db", "copy", "--to", pg_url, "--switch")
    assert r.code != 0 and "not empty" in r.err and "Traceback" not in r.err
    assert {t[0] for t in sql(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")} == {
        "someone_elses"
    }
    assert not (home.path / "database.url").exists() or store.database_url(Home(home.path)) != pg_url


def test_db_copy_without_the_master_key_copies_nothing(home, pg_url, cli, monkeypatch):
    assert cli("init").code == 0
    (home.path / "master.key").rename(home.path / "elsewhere.key")
    r = cli("db", "copy", "--to", pg_url, "--switch")
    assert r.code == 5 and "master key" in r.err
    assert sql(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert not (home.path / "database.url").exists() or store.database_url(Home(home.path)) != pg_url


def test_db_copy_switch_refuses_a_password_before_copying(home, pg_url, cli):
    assert cli("init").code == 0
    r = cli("db", "copy", "--to", pg_url.replace("postgres@", "postgres:pw@"), "--switch")
    assert r.code == 2 and "password" in r.err
    assert sql(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_statement_translation_keeps_a_bounded_cache():
    """`?` placeholders become psycopg's `%s` (a literal `%` doubled, quoted text untouched), and the
    cache of translated statements stays bounded however many statement texts a process sees (some take
    a variable number of placeholders, e.g. the typo lookup's `IN (...)`)."""
    from botctl.postgres.connection import translate

    assert translate("SELECT '?%' , ? WHERE a LIKE '%x' AND b % 2 = ?") == (
        "SELECT '?%' , %s WHERE a LIKE '%x' AND b %% 2 = %s"
    )
    for n in range(1, 10_001):
        translate(f"SELECT term FROM knowledge_terms WHERE term IN ({', '.join('?' * n)})")
    info = translate.cache_info()
    assert info.currsize <= info.maxsize == 4096
