"""The storage seam: which database a home uses, its connections, transactions and numbered migrations.

SQLite (the default): `vault.db` and `audit.db` in the home. PostgreSQL (the home's `database.url` or
`BOTCTL_DATABASE_URL`, see botctl/database.py): one database holding both schemas, through
`botctl.postgres` (imported only then). Library modules open connections with `open_vault` /
`open_audit` / `open_audit_reader`, write inside `transaction(conn)`, and ask `dialect(conn)` where a
statement must differ; the connection object answers `execute` / `executemany` the same way on both.

Standard-library `sqlite3` on purpose: sqlite-utils costs 125-165 ms to import (it pulls in click,
dateutil and pluggy), which alone would break the CLI start-up budget (see docs/architecture.md).

Every connection: WAL, busy_timeout, foreign keys on, autocommit mode with explicit
``BEGIN IMMEDIATE`` transactions. The vault also has ``secure_delete`` on, so a deleted workspace key
is overwritten in the file rather than left in a free page (crypto-shredding must shred).
Schema versions live in ``PRAGMA user_version``; each migration and its version bump commit together.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from botctl.errors import BotctlError, SchemaTooNew
from botctl.home import Home, create_private_file

BUSY_TIMEOUT_MS = 10_000

# The DB-API error classes callers catch: PostgreSQL's errors are raised as these too (postgres/connection.py).
Error = sqlite3.Error
IntegrityError = sqlite3.IntegrityError
OperationalError = sqlite3.OperationalError

VAULT_MIGRATIONS: list[str] = [
    # 1: workspaces, their wrapped keys, and encrypted secrets
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE workspaces (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        plan TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'business')),
        display_name TEXT,
        origins TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE workspace_keys (
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        wrapped BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (workspace_id, version)
    );
    CREATE TABLE secrets (
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        field TEXT NOT NULL,
        dek_version INTEGER NOT NULL,
        ciphertext BLOB NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (workspace_id, owner, field)
    );
    """,
    # 2: the audit root key (wrapped by the KEK) and the audit chain's head checkpoint
    """
    CREATE TABLE wrapped_keys (name TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: connections to vendor tools; their credentials live in `secrets` with owner = connection id
    """
    CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        connector TEXT NOT NULL,
        auth TEXT NOT NULL CHECK (auth IN ('api_key', 'oauth')),
        status TEXT NOT NULL CHECK (status IN ('active', 'needs_reauth', 'error')),
        status_reason TEXT,
        account_label TEXT,
        config TEXT NOT NULL DEFAULT '{}',
        scopes TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_used_at TEXT,
        expires_at TEXT,
        UNIQUE (workspace_id, connector)
    );
    """,
    # 4: visitor identity: per-workspace verification keys and settings
    """
    ALTER TABLE workspaces ADD COLUMN identity_issuer TEXT;
    ALTER TABLE workspaces ADD COLUMN identity_max_lifetime INTEGER NOT NULL DEFAULT 3600;
    CREATE TABLE identity_keys (
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        kid TEXT NOT NULL,
        alg TEXT NOT NULL CHECK (alg IN ('HS256', 'RS256', 'ES256', 'EdDSA')),
        kind TEXT NOT NULL CHECK (kind IN ('secret', 'public_key', 'jwks_url')),
        public_key TEXT,
        jwks_url TEXT,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        PRIMARY KEY (workspace_id, kid)
    );
    """,
    # 5: OAuth. Bring-your-own OAuth apps (workspace_id NULL = the global default). A workspace
    # app's client secret lives in `secrets` (owner oauth-app:<connector>), a global app's in
    # `client_secret`, under the KEK-wrapped key `botctl/v1|oauth-apps` in `wrapped_keys`.
    # Connections gain their token state and the cross-process refresh lease.
    """
    CREATE TABLE oauth_apps (
        workspace_id TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
        connector TEXT NOT NULL,
        client_id TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',
        client_secret BLOB,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX oauth_apps_scope ON oauth_apps (ifnull(workspace_id, ''), connector);
    ALTER TABLE connections ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE connections ADD COLUMN refreshed_at TEXT;
    ALTER TABLE connections ADD COLUMN refresh_state TEXT CHECK (refresh_state IN ('sent', 'unknown'));
    ALTER TABLE connections ADD COLUMN refresh_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE connections ADD COLUMN refresh_retry_at REAL;
    ALTER TABLE connections ADD COLUMN refresh_lease_owner TEXT;
    ALTER TABLE connections ADD COLUMN refresh_lease_until REAL;
    """,
    # 6: knowledge (botctl/knowledge.py). Documents per workspace (AUTOINCREMENT: an id is never reused,
    # so an index row left behind can never attach to a newer document); their chunks in an FTS5 index
    # whose workspace_id and document_id columns are indexed, so a query is scoped inside the index
    # before ranking (and checked again on the rows it returns) and a document's rows are found without
    # a scan; per-workspace document frequencies of the chunks' stems, so ranking and the "do I know
    # this" threshold use only the workspace's own corpus.
    """
    CREATE TABLE knowledge_documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        title TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('markdown', 'text', 'html')),
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        chunks INTEGER NOT NULL,
        words INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        added_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (workspace_id, name)
    );
    CREATE TABLE knowledge_terms (
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        term TEXT NOT NULL,
        df INTEGER NOT NULL,
        PRIMARY KEY (workspace_id, term)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE knowledge_fts USING fts5(
        title, section, body, workspace_id, document_id,
        terms UNINDEXED,
        tokenize = 'porter unicode61 remove_diacritics 2'
    );
    """,
    # 7: write-ahead intents (botctl/intents.py): a vendor write is pending here from just before its
    # `action.started` record until its outcome record; rows a dead process left behind become
    # `action.run` records with outcome `unknown` at the provider's next start.
    """
    CREATE TABLE pending_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace TEXT NOT NULL,
        action TEXT NOT NULL,
        connector TEXT,
        actor TEXT NOT NULL,
        request_id TEXT,
        owner TEXT NOT NULL,
        started_at TEXT NOT NULL,
        started_seq INTEGER
    );
    """,
    # 8: the visitor's confirmation of a write asked for over MCP (botctl/mcp/confirmations.py): the exact
    # params shown, bound to the visitor and the workspace, short-lived, answered once; and per workspace
    # the actions whose confirmation the operator waived.
    """
    CREATE TABLE mcp_confirmations (
        id TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        action TEXT NOT NULL,
        params TEXT,
        params_sha256 TEXT NOT NULL,
        visitor_sub TEXT NOT NULL,
        visitor_email TEXT,
        summary TEXT NOT NULL,
        request_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        decided_at TEXT,
        outcome TEXT
    );
    CREATE TABLE mcp_settings (
        workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
        waived_actions TEXT NOT NULL DEFAULT '[]'
    );
    """,
    # 9: knowledge vectors (botctl/knowledge/vectors.py): one embedding per passage (the knowledge_fts
    # rowid), float32 little-endian in a BLOB, with the model that made it and a hash of the text it was
    # made from (a reused rowid or another model means: recompute); a per-workspace generation, bumped
    # on every change, so a process can keep the workspace's matrix in memory and know when to reload.
    """
    CREATE TABLE knowledge_vectors (
        passage_id INTEGER PRIMARY KEY,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE INDEX knowledge_vectors_workspace ON knowledge_vectors (workspace_id);
    CREATE TABLE knowledge_vector_state (
        workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
        generation INTEGER NOT NULL
    );
    """,
    # 10: the widget (issue #20). Each document's help-center URL (`knowledge add --url-base`, or `url:` in
    # its front matter), which sources link to; the workspace's widget settings (accent colour, logo,
    # language, how to reach support: botctl/widget_settings.py); visitors' votes on answers
    # (botctl/feedback.py): the question and answer the vote is about, the workspace's own visitor id
    # (the identity token's `sub`) or NULL, nothing else about the visitor.
    """
    ALTER TABLE knowledge_documents ADD COLUMN url TEXT;
    CREATE TABLE widget_settings (
        workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
        settings TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE answer_feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        answer_id TEXT NOT NULL,
        vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        grounded INTEGER NOT NULL,
        visitor TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (workspace_id, answer_id)
    );
    CREATE INDEX answer_feedback_vote ON answer_feedback (workspace_id, vote, created_at);
    """,
    # 11: nodes sharing one PostgreSQL database (botctl/nodes.py): each node's heartbeat, written by its
    # running provider; a pending write's node, so a live node can record a lapsed node's writes.
    """
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        pid INTEGER,
        host TEXT,
        started_at TEXT NOT NULL,
        last_seen REAL NOT NULL
    );
    ALTER TABLE pending_actions ADD COLUMN node TEXT;
    """,
    # 12: the jti replay cache shared by the nodes of a PostgreSQL home (botctl/identity/replay.py): each
    # accepted `jti` per workspace until its token expires (a SQLite home keeps it in the provider's memory).
    """
    CREATE TABLE identity_jti (
        workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
        jti TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (workspace_id, jti)
    );
    """,
]

AUDIT_MIGRATIONS: list[str] = [
    # 1: the chain. `body` (canonical JSON) is the only source of truth; the filter columns are
    # generated from it, so an edit to a filterable field is an edit to the MACed body.
    """
    CREATE TABLE records (
        seq INTEGER PRIMARY KEY,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        ts TEXT GENERATED ALWAYS AS (json_extract(body, '$.ts')) VIRTUAL,
        workspace TEXT GENERATED ALWAYS AS (json_extract(body, '$.workspace')) VIRTUAL,
        event TEXT GENERATED ALWAYS AS (json_extract(body, '$.event')) VIRTUAL,
        action TEXT GENERATED ALWAYS AS (json_extract(body, '$.action')) VIRTUAL,
        outcome TEXT GENERATED ALWAYS AS (json_extract(body, '$.outcome')) VIRTUAL,
        visitor_email TEXT GENERATED ALWAYS AS (json_extract(body, '$.actor.email')) VIRTUAL
    );
    CREATE INDEX records_ts ON records (ts);
    CREATE INDEX records_workspace ON records (workspace, seq);
    CREATE INDEX records_event ON records (event, seq);
    """,
    # 2: the request id a visitor is shown ("Reference: req_…") finds its records at once
    # (`botctl audit --request-id`, the console): an index on the same expression Filters.where() uses.
    """
    CREATE INDEX records_request_id ON records (json_extract(body, '$.request_id'));
    """,
]


def now_iso() -> str:
    """UTC, microseconds, `Z` suffix: sortable as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def connect(path: Path, *, durable: bool = False, secure_delete: bool = False) -> sqlite3.Connection:
    """Open (creating 0600 if needed) an SQLite file in autocommit mode with our PRAGMAs.

    `durable`: synchronous=FULL, for the audit log (a record a visitor was told about survives power loss).
    """
    create_private_file(path)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise BotctlError(f"could not put {path} in WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    if secure_delete:
        conn.execute("PRAGMA secure_delete = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; rolls back on any exception, so a failed command leaves nothing.
    On PostgreSQL: the connection's own (one write transaction at a time; nested, a savepoint)."""
    if not isinstance(conn, sqlite3.Connection):
        with conn.transaction():  # type: ignore[attr-defined]
            yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    if not isinstance(conn, sqlite3.Connection):
        return _pg_version(conn, conn.schema)  # type: ignore[attr-defined]
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _pg_version(conn, which: str) -> int:  # noqa: ANN001
    row = conn.execute("SELECT to_regclass('schema_versions') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (which,)).fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, migrations: list[str], *, what: str, target: int | None = None) -> int:
    """Bring `conn` up to `target` (default: latest). Refuses a schema newer than this botctl knows."""
    if not isinstance(conn, sqlite3.Connection):
        return _pg_migrate(conn, migrations, what=what, target=target)
    latest = len(migrations)
    target = latest if target is None else target
    current = schema_version(conn)
    if current > latest:
        raise SchemaTooNew(
            f"{what} has schema version {current}, but this botctl only knows versions up to {latest}.",
            hint="Upgrade botctl (pip install -U botctl); this home was written by a newer release.",
        )
    while current < target:
        with transaction(conn):
            # Re-read inside the write lock: another process may have migrated meanwhile.
            current = schema_version(conn)
            if current >= target:
                break
            for statement in _statements(migrations[current]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {current + 1}")
        current += 1
    return current


def _pg_migrate(conn, migrations: list[str], *, what: str, target: int | None) -> int:  # noqa: ANN001
    from botctl.postgres import schema

    which = conn.schema
    steps = schema.migrations(which, migrations)
    latest = len(steps)
    target = latest if target is None else target
    current = schema_version(conn)
    _refuse_newer(current, latest, what)
    while current < target:
        with transaction(conn):  # the write lock: one process migrates, the others then find it done
            conn.execute(schema.VERSIONS_TABLE)
            current = schema_version(conn)
            _refuse_newer(current, latest, what)
            if current >= target:
                break
            for statement in _statements(steps[current]):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions (name, version) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET version = excluded.version",
                (which, current + 1),
            )
        current += 1
    return current


def _refuse_newer(current: int, latest: int, what: str) -> None:
    if current > latest:
        raise SchemaTooNew(
            f"{what} has schema version {current}, but this botctl only knows versions up to {latest}.",
            hint="Upgrade botctl (pip install -U botctl); this home was written by a newer release.",
        )


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on ';' instead (our DDL has no ';' in literals).
    return [s.strip() for s in script.split(";") if s.strip()]


def check_version(conn: sqlite3.Connection, migrations: list[str], *, what: str) -> int:
    """For read-only opens: refuse a newer schema without writing anything."""
    current = schema_version(conn)
    if current > len(migrations):
        raise SchemaTooNew(
            f"{what} has schema version {current}, but this botctl only knows versions up to {len(migrations)}.",
            hint="Upgrade botctl; this home was written by a newer release.",
        )
    return current


# -- the seam: which database a home uses, and its connections --------------------------------------------


def database_url(home: Home) -> str | None:
    """The home's PostgreSQL URL, or None: SQLite files in the home."""
    if not os.environ.get("BOTCTL_DATABASE_URL") and not home.database_url_file.exists():
        return None  # the SQLite path: one stat, nothing more imported at start-up
    from botctl import database

    return database.configured(home.path)


def dialect(conn: object) -> str:
    """ "sqlite" or "postgresql": for the few statements that must differ."""
    return "sqlite" if isinstance(conn, sqlite3.Connection) else "postgresql"


def where(home: Home, which: str = "vault") -> str:
    """How messages name a home's database: a file, or the URL without its password."""
    url = database_url(home)
    if url is None:
        return str(home.vault_db if which == "vault" else home.audit_db)
    from botctl import database

    return f"{database.redacted(url)} ({which} schema)"


def _pg(url: str, schema: str):  # noqa: ANN202 - a PgConnection
    from botctl.postgres.connection import connect as pg_connect

    return pg_connect(url, schema=schema)


def open_vault(home: Home, *, migrate_to_latest: bool = True):  # noqa: ANN201 - sqlite3.Connection | PgConnection
    """The vault's connection; migrated to this botctl's schema unless `migrate_to_latest` is False (then
    a newer schema is still refused)."""
    url = database_url(home)
    conn = _pg(url, "vault") if url else connect(home.vault_db, secure_delete=True)
    try:
        if migrate_to_latest:
            migrate(conn, VAULT_MIGRATIONS, what=where(home))
        else:
            check_version(conn, VAULT_MIGRATIONS, what=where(home))
    except BaseException:
        conn.close()
        raise
    return conn


def open_audit(home: Home):  # noqa: ANN201
    """A connection that writes the audit chain, migrated. On PostgreSQL the chain lives beside the vault."""
    url = database_url(home)
    if url:
        conn = _pg(url, "audit")
    else:
        home.ensure()
        conn = connect(home.audit_db, durable=True)
    try:
        migrate(conn, AUDIT_MIGRATIONS, what=where(home, "audit"))
    except BaseException:
        conn.close()
        raise
    return conn


def open_audit_reader(home: Home):  # noqa: ANN201
    """A connection to read the chain, or None while no record has ever been written (no audit schema)."""
    url = database_url(home)
    if url:
        conn = _pg(url, "audit")
    elif home.audit_db.exists():
        conn = connect(home.audit_db, durable=True)
    else:
        return None
    try:
        check_version(conn, AUDIT_MIGRATIONS, what=where(home, "audit"))
        if schema_version(conn) == 0:
            conn.close()
            return None
    except BaseException:
        conn.close()
        raise
    return conn
