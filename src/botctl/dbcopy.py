"""`botctl db copy`: a home's tables, every row as it is, into another database (empty), in one transaction.

Targets: `postgresql://…` (an empty database: no table in its schema) or `sqlite:PATH` (a folder without
vault.db / audit.db; `sqlite:` alone is the home itself). The source is read under its write lock, so
nothing changes while it is copied; the audit chain is copied row for row and compared with the source
before the target commits (seq, body, prev_hash, hash: byte for byte), so `audit verify` passes on the copy
with the same key. Rows are copied as stored: secrets stay ciphertext under the same keys and AAD.
`switch`: the home then uses the target (the SQLite files it leaves are renamed `*.copied`: they still hold
every wrapped key, so the operator deletes them once the copy is checked).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from botctl import database, store
from botctl.errors import BotctlError, UsageError
from botctl.home import Home

ORDER = {
    "vault": [
        "meta",
        "workspaces",
        "workspace_keys",
        "secrets",
        "wrapped_keys",
        "audit_checkpoint",
        "connections",
        "identity_keys",
        "oauth_apps",
        "knowledge_documents",
        "knowledge_terms",
        "knowledge_fts",
        "pending_actions",
        "widget_settings",
        "answer_feedback",
        "mcp_confirmations",
        "mcp_settings",
        "knowledge_vectors",
        "knowledge_vector_state",
        "nodes",
        "identity_jti",
    ],
    "audit": ["records"],
}
IDENTITY_TABLES = ("knowledge_documents", "knowledge_fts", "pending_actions", "answer_feedback")
# knowledge_fts rows are identified by FTS5's rowid on SQLite and an id column on PostgreSQL; the vectors
# point at them (knowledge_vectors.passage_id), so the copy keeps the number.
PASSAGE_KEY = {"sqlite": "rowid", "postgresql": "id"}
COPIED_SUFFIX = ".copied"


def parse_target(home: Home, to: str) -> tuple[str, str | Path]:
    """("postgresql", url) or ("sqlite", folder)."""
    if to.startswith("sqlite:"):
        rest = to[len("sqlite:") :]
        folder = Path(rest).expanduser().absolute() if rest else home.path
        return "sqlite", folder
    if database.is_postgres(to):
        return "postgresql", database.check(to, stored=False)
    raise UsageError(f"unsupported --to {to!r}.", hint="Use postgresql://USER@HOST:PORT/DB or sqlite:PATH.")


def columns(conn: Any, table: str) -> list[str]:
    """The table's stored columns (generated ones left out: they follow from the others)."""
    if store.dialect(conn) == "sqlite":
        return [r[1] for r in conn.execute(f"PRAGMA table_xinfo({table})").fetchall() if r[6] == 0]
    return [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? AND is_generated = 'NEVER' ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]


def tables(conn: Any) -> set[str]:
    if store.dialect(conn) == "sqlite":
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'knowledge_fts_%'"
        ).fetchall()
    else:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    return {r[0] for r in rows} - {"schema_versions"}


def copy(home: Home, to: str, *, switch: bool = False) -> dict[str, Any]:
    kind, target = parse_target(home, to)
    current = store.database_url(home)
    if switch and kind == "postgresql":
        database.check(str(target), stored=True)  # refused before anything is copied: it would be stored
    if kind == "sqlite" and current is None and Path(target) == home.path:
        raise UsageError(
            "this home already keeps its tables in SQLite files.", hint="Give --to sqlite:OTHER_FOLDER."
        )
    if switch and kind == "sqlite" and Path(target) != home.path:
        raise UsageError("--switch to SQLite copies into the home itself.", hint="Use --to sqlite: --switch.")
    with ExitStack() as stack:
        src_vault = stack.enter_context(_closing(store.open_vault(home)))
        src_audit = store.open_audit_reader(home)
        if src_audit is not None:
            stack.enter_context(_closing(src_audit))
        # The source's write lock(s): vault, then audit (the order every writer takes them in).
        stack.enter_context(store.transaction(src_vault))
        if src_audit is not None and store.dialect(src_audit) == "sqlite":
            stack.enter_context(store.transaction(src_audit))
        counts = _copy_into(kind, target, src_vault, src_audit)
    if switch:
        _switch(home, kind, target)
    return {
        "to": database.redacted(str(target)) if kind == "postgresql" else f"sqlite:{target}",
        "backend": kind,
        "tables": counts,
        "records": counts.get("records", 0),
        "switched": switch,
    }


def _copy_into(kind: str, target: str | Path, src_vault: Any, src_audit: Any) -> dict[str, int]:
    if kind == "postgresql":
        from botctl.postgres.connection import connect

        dst = connect(str(target))
        try:
            taken = tables(dst)
            if taken:
                raise BotctlError(
                    f"the target database {database.redacted(str(target))} is not empty "
                    f"({len(taken)} tables, e.g. {sorted(taken)[0]}).",
                    hint="Copy into a new, empty database (CREATE DATABASE ... OWNER ...).",
                    code="target_not_empty",
                )
            with dst.transaction():  # everything, the schema too, or nothing
                dst.schema = "vault"
                store.migrate(dst, store.VAULT_MIGRATIONS, what=str(target))
                dst.schema = "audit"
                store.migrate(dst, store.AUDIT_MIGRATIONS, what=str(target))
                counts = _copy_tables(src_vault, dst, "vault")
                if src_audit is not None:
                    counts.update(_copy_tables(src_audit, dst, "audit"))
                    _same_chain(src_audit, dst)
                for table in IDENTITY_TABLES:
                    dst.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    )
        finally:
            dst.close()
        return counts
    folder = Path(target)
    vault_path, audit_path = folder / "vault.db", folder / "audit.db"
    if vault_path.exists() or audit_path.exists():
        raise BotctlError(
            f"{folder} already holds vault.db or audit.db.",
            hint="Copy into an empty folder.",
            code="target_not_empty",
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with (
            _closing(store.connect(vault_path, secure_delete=True)) as dv,
            _closing(store.connect(audit_path, durable=True)) as da,
        ):
            store.migrate(dv, store.VAULT_MIGRATIONS, what=str(vault_path))
            store.migrate(da, store.AUDIT_MIGRATIONS, what=str(audit_path))
            with store.transaction(dv), store.transaction(da):
                counts = _copy_tables(src_vault, dv, "vault")
                if src_audit is not None:
                    counts.update(_copy_tables(src_audit, da, "audit"))
                    _same_chain(src_audit, da)
    except BaseException:
        for p in (vault_path, audit_path):
            for extra in ("", "-wal", "-shm"):
                Path(str(p) + extra).unlink(missing_ok=True)
        raise
    return counts


def _copy_tables(src: Any, dst: Any, which: str) -> dict[str, int]:
    present = tables(src)
    unknown = present - {t for names in ORDER.values() for t in names}  # one PostgreSQL database holds both
    if unknown:  # a table this copy would leave behind: refuse rather than copy part of the home
        raise BotctlError(
            f"db copy does not know the table(s) {', '.join(sorted(unknown))}.",
            hint="Upgrade botctl, or report this: every table must be copied.",
            code="copy_incomplete",
        )
    counts = {}
    for table in ORDER[which]:
        if table not in present:
            continue
        cols = [c for c in columns(src, table) if c in set(columns(dst, table)) and c != "id"]
        src_cols, dst_cols = list(cols), list(cols)
        if table == "knowledge_fts" or "id" in columns(src, table):
            src_cols.insert(0, PASSAGE_KEY[store.dialect(src)] if table == "knowledge_fts" else "id")
            dst_cols.insert(0, PASSAGE_KEY[store.dialect(dst)] if table == "knowledge_fts" else "id")
        rows = src.execute(f"SELECT {', '.join(src_cols)} FROM {table}").fetchall()
        dst.executemany(
            f"INSERT INTO {table} ({', '.join(dst_cols)}) VALUES ({', '.join('?' * len(dst_cols))})", rows
        )
        counts[table] = len(rows)
    return counts


def _same_chain(src: Any, dst: Any) -> None:
    """The copy's chain is the source's, byte for byte, or the copy is rolled back."""
    sql = "SELECT seq, body, prev_hash, hash FROM records ORDER BY seq"
    if src.execute(sql).fetchall() != dst.execute(sql).fetchall():
        raise BotctlError(
            "the copied audit chain differs from the source; nothing was copied.", code="copy_mismatch"
        )


def _switch(home: Home, kind: str, target: str | Path) -> None:
    if kind == "postgresql":
        database.save(home.path, str(target))
        for name in ("vault.db", "audit.db", "vault.db-wal", "vault.db-shm", "audit.db-wal", "audit.db-shm"):
            p = home.path / name
            if p.exists():
                p.rename(p.with_name(p.name + COPIED_SUFFIX))
    else:
        home.database_url_file.unlink(missing_ok=True)


class _closing:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
