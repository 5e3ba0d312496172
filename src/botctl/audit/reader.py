"""Reading the log: AuditReader (latest, after, get, follow) and the Filters it applies. No key needed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botctl import store
from botctl.audit.records import _RECORD_COLUMNS, to_record
from botctl.errors import NotFound
from botctl.home import Home


@dataclass
class Filters:
    workspace: str | None = None
    event: str | None = None
    action: str | None = None
    outcome: str | None = None
    visitor: str | None = None
    since: str | None = None  # ISO, already parsed

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (("workspace", self.workspace), ("event", self.event), ("action", self.action),
                              ("outcome", self.outcome), ("visitor_email", self.visitor)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value.lower() if column == "visitor_email" else value)
        if self.since is not None:
            clauses.append("ts >= ?")
            args.append(self.since)
        return (" AND ".join(clauses) or "1"), args


class AuditReader:
    """Reads need no key: anyone who may read audit.db may read the records; only verify needs it."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._conn: sqlite3.Connection | None = None
        self._open()

    def _open(self) -> sqlite3.Connection | None:
        """Connect once the log exists (a reader may start before the first record is written)."""
        if self._conn is None and self.home.audit_db.exists():
            conn = store.connect(self.home.audit_db, durable=True)
            store.check_version(conn, store.AUDIT_MIGRATIONS, what=str(self.home.audit_db))
            if store.schema_version(conn) == 0:
                conn.close()
            else:
                self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def latest(self, filters: Filters, limit: int) -> list[dict[str, Any]]:
        if self._conn is None:
            return []
        where, args = filters.where()
        rows = self._conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE {where} ORDER BY seq DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [to_record(r) for r in reversed(rows)]

    def after(self, seq: int, filters: Filters, limit: int = 1000) -> list[dict[str, Any]]:
        conn = self._open()
        if conn is None:
            return []
        where, args = filters.where()
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq > ? AND {where} ORDER BY seq LIMIT ?", (seq, *args, limit)
        ).fetchall()
        return [to_record(r) for r in rows]

    def head_seq(self) -> int:
        if self._conn is None:
            return 0
        row = self._conn.execute("SELECT max(seq) FROM records").fetchone()
        return row[0] or 0

    def get(self, seq: int) -> dict[str, Any]:
        row = None
        if self._conn is not None:
            row = self._conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise NotFound(f"no audit record with seq {seq}.", hint="List records with `botctl audit -n 50`.")
        return to_record(row)

    def follow(self, filters: Filters, *, start_after: int, interval: float = 0.25) -> Iterator[dict[str, Any]]:
        import time

        last = start_after
        while True:
            batch = self.after(last, Filters(), limit=1000)
            if batch:
                last = batch[-1]["seq"]
                where_ok = _matcher(filters)
                for rec in batch:
                    if where_ok(rec):
                        yield rec
                continue
            time.sleep(interval)


def _matcher(f: Filters):
    def ok(rec: dict[str, Any]) -> bool:
        return (
            (f.workspace is None or rec.get("workspace") == f.workspace)
            and (f.event is None or rec.get("event") == f.event)
            and (f.action is None or rec.get("action") == f.action)
            and (f.outcome is None or rec.get("outcome") == f.outcome)
            and (f.visitor is None or (rec.get("actor") or {}).get("email") == f.visitor.lower())
            and (f.since is None or rec.get("ts", "") >= f.since)
        )

    return ok
