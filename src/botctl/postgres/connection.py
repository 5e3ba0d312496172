"""PgConnection: a psycopg 3 connection shaped like the part of `sqlite3.Connection` botctl uses.

The library's SQL is written once, in the subset both dialects share (`?` placeholders, `ON CONFLICT ...
DO UPDATE`, `RETURNING`, `coalesce`); where a statement must differ, the caller asks `store.dialect(conn)`.

* autocommit, like the SQLite connections: a statement outside `transaction()` commits on its own;
* `transaction()` is BEGIN ... COMMIT holding the advisory lock `WRITE_LOCK` until it ends: write
  transactions run one at a time, as SQLite's `BEGIN IMMEDIATE` makes them, so every check-then-write the
  library does inside one (the key check value, the token generation, the chain's head) means the same on
  both backends. Nested, it is a SAVEPOINT: the audit writer's transaction inside a change's transaction
  is the same transaction, so on PostgreSQL a change and its audit record commit together;
* psycopg's errors are raised as the DB-API classes of `sqlite3` (IntegrityError, OperationalError,
  DatabaseError), the original chained, so `except store.IntegrityError` works on both.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from botctl import database

# pg_advisory_xact_lock key of every write transaction (ASCII "botctl" as an int64).
WRITE_LOCK = 0x626F7463746C
NOTIFY_CHANNEL = "botctl_audit"
CONNECT_TIMEOUT_S = 10

_savepoints = itertools.count(1)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """`?` → `%s` and `%` → `%%` outside string literals. Cached, and bounded: the library's statements
    are a fixed set, but some take a variable number of placeholders (`IN (?, ?, ...)`), so the set of
    texts is not, and no caller's input may grow a process's memory without end."""
    parts, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            parts.append(ch)
        elif quoted:
            parts.append(ch)
        elif ch == "?":
            parts.append("%s")
        elif ch == "%":
            parts.append("%%")
        else:
            parts.append(ch)
    return "".join(parts)


def _params(params: Sequence[Any] | None) -> tuple | None:
    if not params:
        return None
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


def _mapped(exc: psycopg.Error) -> sqlite3.Error:
    text = (exc.diag.message_primary or str(exc).splitlines()[0]) if hasattr(exc, "diag") else str(exc)
    if isinstance(exc, psycopg.IntegrityError):
        return sqlite3.IntegrityError(text)
    if isinstance(
        exc, psycopg.OperationalError | psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled
    ):
        return sqlite3.OperationalError(text)
    return sqlite3.DatabaseError(text)


class PgCursor:
    """What callers read from `execute`: fetchone, fetchall, iteration, rowcount."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.Cursor) -> None:
        self._cur = cur

    def fetchone(self) -> tuple | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[tuple]:
        return self._cur.fetchall() if self._cur.description else []

    def fetchmany(self, size: int) -> list[tuple]:
        return self._cur.fetchmany(size) if self._cur.description else []

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


class PgConnection:
    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection, url: str) -> None:
        self.raw = raw
        self.url = url
        self.schema = "vault"  # which numbered migrations `store.schema_version` reads

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        p = _params(params)
        try:
            cur = self.raw.execute(translate(sql) if p is not None else sql, p)
        except psycopg.Error as exc:
            raise _mapped(exc) from exc
        return PgCursor(cur)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        rows = [_params(r) or () for r in rows]
        cur = self.raw.cursor()
        if rows:
            try:
                cur.executemany(translate(sql), rows)
            except psycopg.Error as exc:
                raise _mapped(exc) from exc
        return PgCursor(cur)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        if self.in_transaction:
            name = f"botctl_sp{next(_savepoints)}"
            self.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                self._quietly(f"ROLLBACK TO SAVEPOINT {name}")
                raise
            self.execute(f"RELEASE SAVEPOINT {name}")
            return
        self.execute("BEGIN")
        try:
            self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            yield self
        except BaseException:
            self._quietly("ROLLBACK")
            raise
        self.execute("COMMIT")

    def _quietly(self, sql: str) -> None:
        try:
            self.raw.execute(sql)
        except psycopg.Error:
            pass  # the connection is gone: the server rolled the transaction back itself

    @property
    def broken(self) -> bool:
        """The server connection is lost (psycopg never reconnects one): a new connection is needed."""
        return self.raw.broken or self.raw.closed

    def server_version(self) -> str:
        v = self.raw.info.server_version
        return f"{v // 10000}.{v % 10000}"

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, *, schema: str = "vault") -> PgConnection:
    """Connect (autocommit) or raise a BotctlError saying which server could not be reached and why."""
    from botctl.errors import BotctlError

    conninfo, extra = database.libpq_conninfo(url)
    try:
        raw = psycopg.connect(
            conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="botctl", **extra
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise BotctlError(
            f"cannot connect to the PostgreSQL database {database.redacted(url)}: {reason}",
            hint="Check that the server is running and the URL, role and password source "
            "(passfile, PGPASSFILE, credential) are right; `botctl doctor` shows the URL in use.",
            code="database_unavailable",
        ) from None
    conn = PgConnection(raw, url)
    conn.schema = schema
    return conn
