"""Reading the log: AuditReader (latest, after, get, backlog + follow) and the Filters it applies. No key
needed. What late outcomes add to a record and to a filter's selection is audit/resolution.py's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botctl import store
from botctl.audit import resolution
from botctl.audit.records import _RECORD_COLUMNS, ACTOR_TYPES, to_record
from botctl.errors import NotFound
from botctl.home import Home


@dataclass
class Filters:
    """Which records to show: every field given must match (None: any). The CLI's `botctl audit` flags,
    the console's form and the Python API all build this one object, so they select the same records.

    `actor` is a type (`operator`, `ci`, `visitor`, `system`), `TYPE:WHO`, or `WHO` alone, WHO being the
    actor's email or sub as `botctl audit` shows it (`visitor:ada@example.com`, `operator:alice`).
    `since` / `until` are ISO timestamps already parsed (`durations.parse_since`): since <= ts < until.
    """

    workspace: str | None = None
    event: str | None = None
    action: str | None = None
    outcome: str | None = None
    visitor: str | None = None
    since: str | None = None
    until: str | None = None
    request_id: str | None = None
    actor: str | None = None
    connector: str | None = None

    def _actor_parts(self) -> tuple[str | None, str | None]:
        """(type, who) from `actor`."""
        if self.actor is None:
            return None, None
        kind, sep, who = self.actor.partition(":")
        if sep and kind in ACTOR_TYPES:
            return kind, who
        if not sep and self.actor in ACTOR_TYPES:
            return self.actor, None
        return None, self.actor

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (
            ("workspace", self.workspace),
            ("event", self.event),
            ("action", self.action),
            ("outcome", self.outcome),
            ("visitor_email", self.visitor),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value.lower() if column == "visitor_email" else value)
        # No generated columns for these (the schema is the chain's): json_extract on the MACed body.
        for path, value in (("$.request_id", self.request_id), ("$.connector", self.connector)):
            if value is not None:
                clauses.append(f"json_extract(body, '{path}') = ?")
                args.append(value)
        kind, who = self._actor_parts()
        if kind is not None:
            clauses.append("json_extract(body, '$.actor.type') = ?")
            args.append(kind)
        if who is not None:
            clauses.append(
                "(json_extract(body, '$.actor.email') = ? OR json_extract(body, '$.actor.sub') = ?)"
            )
            args += [who.lower(), who]
        if self.since is not None:
            clauses.append("ts >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("ts < ?")
            args.append(self.until)
        return (" AND ".join(clauses) or "1 = 1"), args

    def matches(self, rec: dict[str, Any]) -> bool:
        """The same test as `where()`, on a record already read (`follow` reads every new record)."""
        actor = rec.get("actor") or {}
        kind, who = self._actor_parts()
        ts = rec.get("ts", "")
        return (
            (self.workspace is None or rec.get("workspace") == self.workspace)
            and (self.event is None or rec.get("event") == self.event)
            and (self.action is None or rec.get("action") == self.action)
            and (self.outcome is None or rec.get("outcome") == self.outcome)
            and (self.visitor is None or actor.get("email") == self.visitor.lower())
            and (self.request_id is None or rec.get("request_id") == self.request_id)
            and (self.connector is None or rec.get("connector") == self.connector)
            and (kind is None or actor.get("type") == kind)
            and (who is None or actor.get("email") == who.lower() or actor.get("sub") == who)
            and (self.since is None or ts >= self.since)
            and (self.until is None or ts < self.until)
        )


class AuditReader:
    """Reads need no key: anyone who may read audit.db may read the records; only verify needs it."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._conn: Any = None
        self._open()

    def _open(self) -> Any:
        """Connect once the log exists (a reader may start before the first record is written)."""
        if self._conn is None:
            self._conn = store.open_audit_reader(self.home)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def latest(
        self, filters: Filters, limit: int, *, with_late: bool = False, up_to: int | None = None
    ) -> list[dict[str, Any]]:
        """The latest `limit` records `filters` selects (up to seq `up_to`), oldest first. `with_late`: also
        each late record that resolves an `unknown` the filter selects (`shows`), as `botctl audit` lists."""
        if self._conn is None:
            return []
        where, args = self._where(filters, with_late=with_late, up_to=up_to, limit=limit, newest=True)
        rows = self._conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE {where} ORDER BY seq DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [to_record(r) for r in reversed(rows)]

    def after(
        self, seq: int, filters: Filters, limit: int = 1000, *, with_late: bool = False
    ) -> list[dict[str, Any]]:
        """The first `limit` records after `seq` that `filters` selects (`with_late`: as in `latest`)."""
        conn = self._open()
        if conn is None:
            return []
        where, args = self._where(filters, with_late=with_late, after=seq, limit=limit)
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq > ? AND {where} ORDER BY seq LIMIT ?",
            (seq, *args, limit),
        ).fetchall()
        return [to_record(r) for r in rows]

    def _where(
        self,
        filters: Filters,
        *,
        with_late: bool,
        limit: int,
        after: int = 0,
        up_to: int | None = None,
        newest: bool = False,
    ) -> tuple[str, list[Any]]:
        """`filters.where()`, bounded by `up_to`, and with `with_late` the late records it shows by their
        seqs (only the `limit` nearest the end read first can be among the records returned)."""
        where, args = filters.where()
        if with_late and filters != Filters():
            extra = resolution.shown_late(self._conn, where, args, after=after, up_to=up_to)
            extra = extra[-limit:] if newest else extra[:limit]
            if extra:
                where, args = f"(({where}) OR seq IN ({', '.join('?' * len(extra))}))", [*args, *extra]
        if up_to is not None:
            where, args = f"seq <= ? AND {where}", [up_to, *args]
        return where, args

    def shows(self, filters: Filters, rec: dict[str, Any]) -> bool:
        """Whether `botctl audit` with `filters` shows `rec`: it matches, or it is a late record that
        resolves an `unknown` that matches (the test `follow` applies to each new record)."""
        if filters.matches(rec):
            return True
        target = resolution.targets(self._conn, [rec]).get(rec["seq"])
        return target is not None and filters.matches(target)

    def backlog(self, filters: Filters, limit: int) -> tuple[list[dict[str, Any]], int]:
        """What `audit -f` prints before it follows: the latest `limit` records `filters` shows (late records
        included), and the seq to follow after. The head is read first and bounds the records: every record
        is then either at most the head (read by the one, if shown) or after it (the follower's), whatever
        is committed while these run, so none is lost or printed twice."""
        head = self.head_seq()
        return self.latest(filters, limit, with_late=True, up_to=head), head

    def resolved_late(self, records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """For the `unknown` outcomes among `records`: the `action.outcome_late` record that resolves each one
        (its process had stalled, another recorded it interrupted, then it recorded the real outcome:
        botctl/intents.py), as {unknown seq: {seq, outcome, node?}}."""
        return resolution.resolved_late(self._conn, records)

    def resolves(self, records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """For the `action.outcome_late` records among `records`: the earlier record each one resolves, as
        {late seq: {seq, outcome, reason, node?}}, read from the log (only an `unknown` action.run before it
        counts: the other half of `resolved_late`)."""
        return resolution.resolves(self._conn, records)

    def annotated(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`records` with what the reader adds beside the MACed body: `resolved_late` on an `unknown` that a
        later `action.outcome_late` resolved, `resolves` on that late record (what `botctl audit` shows)."""
        late, resolves = self.resolved_late(records), self.resolves(records)
        out = []
        for rec in records:
            extra = {}
            if rec["seq"] in late:
                extra["resolved_late"] = late[rec["seq"]]
            if rec["seq"] in resolves:
                extra["resolves"] = resolves[rec["seq"]]
            out.append({**rec, **extra} if extra else rec)
        return out

    def head_seq(self) -> int:
        if self._conn is None:
            return 0
        row = self._conn.execute("SELECT max(seq) FROM records").fetchone()
        return row[0] or 0

    def get(self, seq: int) -> dict[str, Any]:
        row = None
        if self._conn is not None:
            row = self._conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq = ?", (seq,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no audit record with seq {seq}.", hint="List records with `botctl audit -n 50`.")
        return to_record(row)

    def follow(
        self, filters: Filters, *, start_after: int, interval: float = 0.25
    ) -> Iterator[dict[str, Any]]:
        """The records after `start_after` that `filters` shows (`shows`: late records included), in order,
        as they are written: polled every `interval` on SQLite; on PostgreSQL woken by the writers' NOTIFY
        (`interval` is then only the longest wait between checks). `backlog` says where to start."""
        import time

        def shown(rec: dict[str, Any]) -> bool:
            return self.shows(filters, rec)

        url = store.database_url(self.home)
        if url:
            from botctl.postgres.follow import follow

            yield from follow(
                url,
                lambda seq, limit: self.after(seq, Filters(), limit=limit),
                shown,
                start_after=start_after,
            )
            return
        last = start_after
        while True:
            batch = self.after(last, Filters(), limit=1000)
            if batch:
                last = batch[-1]["seq"]
                for rec in batch:
                    if shown(rec):
                        yield rec
                continue
            time.sleep(interval)
