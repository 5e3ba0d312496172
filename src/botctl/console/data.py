"""What the console shows, read from the home: audit records through the library's `audit.Filters` (the
same selection as `botctl audit`), the chain's verdict, connections, actions and refusals per day.

Nothing here writes: records are read with `AuditReader`, connections with `Vault.open_readonly`. The
verdict needs the audit key (the master key), opened once by `Console` and used under a lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botctl import audit
from botctl.cli.output import escape
from botctl.errors import BotctlError, UsageError
from botctl.home import Home

# The filter form's fields, in order: (query parameter, label, hint). Names match the CLI's flags.
FILTER_FIELDS = (
    ("workspace", "Workspace", "acme"),
    ("event", "Event", "action.run"),
    ("action", "Action", "zendesk.create_ticket"),
    ("outcome", "Outcome", ""),
    ("visitor", "Visitor email", "ada@example.com"),
    ("actor", "Actor", "visitor, operator:alice"),
    ("connector", "Connector", "zendesk"),
    ("request_id", "Request id", "req_…"),
    ("since", "Since", "2h, 3d, 2026-11-01T00:00"),
    ("until", "Until", "1h, 2026-11-02"),
)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_FILTER_LEN = 200
LIVE_BATCH = 200


@dataclass
class Query:
    """The timeline's filters as the operator typed them (`values`), parsed into `filters`."""

    values: dict[str, str] = field(default_factory=dict)
    filters: audit.Filters = field(default_factory=audit.Filters)
    limit: int = DEFAULT_LIMIT
    error: str | None = None

    def query_string(self, **override: str) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in {**self.values, **override}.items() if v})


def parse_query(params: Any) -> Query:
    """The form's query parameters → Filters, checked as the CLI checks its flags (bad input: `error` set
    and nothing selected, never a traceback)."""
    values = {name: str(params.get(name, "")).strip()[:MAX_FILTER_LEN] for name, _, _ in FILTER_FIELDS}
    q = Query(values=values)
    try:
        raw_limit = str(params.get("n", "") or DEFAULT_LIMIT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise UsageError(f"show 1 to {MAX_LIMIT} records, not {raw_limit!r}.")
        q.limit = int(raw_limit)
        if values["outcome"] and values["outcome"] not in audit.OUTCOMES:
            raise UsageError(
                f"unknown outcome {values['outcome']!r}: use one of {', '.join(audit.OUTCOMES)}."
            )
        since = audit.parse_since(values["since"], flag="since") if values["since"] else None
        until = audit.parse_since(values["until"], flag="until") if values["until"] else None
        if since is not None and until is not None and until <= since:
            raise UsageError("'until' is not after 'since': no record can match.")
        q.filters = audit.Filters(
            **{k: (v or None) for k, v in values.items() if k not in ("since", "until")},
            since=since,
            until=until,
        )
    except BotctlError as exc:
        q.error = exc.message
    return q


def _actor(rec: dict[str, Any]) -> str:
    a = rec.get("actor") or {}
    who = a.get("email") or a.get("sub")
    return f"{a.get('type', '?')}:{who}" if who else str(a.get("type", "?"))


def visible(value: Any) -> str:
    """A value as display text: controls and bidi overrides made visible, as the CLI shows them. HTML
    escaping is the templates' (autoescape) and the scripts' (textContent): this is not that."""
    if value is None:
        return ""
    return escape(value if isinstance(value, str) else str(value))


def _mark(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """A late resolution's other record, as a row links to it: {seq, outcome}."""
    return {"seq": found["seq"], "outcome": visible(found["outcome"])} if found is not None else None


def row(rec: dict[str, Any]) -> dict[str, Any]:
    """One timeline row: display strings (the page's table and the live updates use this same shape).
    `late` / `resolves`: on a record `AuditReader.annotated` marked, the other record of the resolution
    (shown after the reason, as `botctl audit` shows it: `(late: ok #SEQ)`, `(resolves #SEQ, was unknown)`)."""
    return {
        "seq": rec["seq"],
        "time": visible(rec.get("ts", "")[:23].replace("T", " ")),
        "workspace": visible(rec.get("workspace")),
        "actor": visible(_actor(rec)),
        "event": visible(rec.get("event")),
        "action": visible(rec.get("action")),
        "outcome": visible(rec.get("outcome")),
        "reason": visible(rec.get("reason")),
        "request_id": visible(rec.get("request_id")),
        "request_id_raw": rec.get("request_id") if isinstance(rec.get("request_id"), str) else "",
        "late": _mark(rec.get("resolved_late")),
        "resolves": _mark(rec.get("resolves")),
    }


def timeline(home: Home, q: Query) -> tuple[list[dict[str, Any]], int]:
    """The latest `q.limit` matching records, newest first, and the head seq they were read at."""
    reader = audit.AuditReader(home)
    try:
        head = reader.head_seq()
        if q.error is not None:
            return [], head
        records = reader.latest(q.filters, q.limit, with_late=True, up_to=head)  # `newer` goes on after head
        records = reader.annotated(records)  # reads only the late records after the oldest unknown: few
    finally:
        reader.close()
    return [row(r) for r in reversed(records)], head


def newer(home: Home, q: Query, after: int) -> tuple[list[dict[str, Any]], int]:
    """Matching records above `after` (oldest first), and the seq the next poll should start after: the
    head when everything up to it was read, else the last record returned. A row already shown is not
    updated: when an unknown's late record arrives, its own row says which record it resolves."""
    reader = audit.AuditReader(home)
    try:
        head = reader.head_seq()
        if q.error is not None or head <= after:
            return [], max(head, after)
        found = [
            r for r in reader.after(after, q.filters, limit=LIVE_BATCH, with_late=True) if r["seq"] <= head
        ]
        found = reader.annotated(found)
    finally:
        reader.close()
    nxt = found[-1]["seq"] if len(found) == LIVE_BATCH else head
    return [row(r) for r in found], nxt


def record(home: Home, seq: int) -> dict[str, Any]:
    import json

    reader = audit.AuditReader(home)
    try:
        [rec] = reader.annotated([reader.get(seq)])
        head = reader.head_seq()
    finally:
        reader.close()
    fields = [
        ("seq", rec["seq"]),
        ("time", rec.get("ts")),
        ("workspace", rec.get("workspace")),
        ("actor", _actor(rec)),
        ("event", rec.get("event")),
        ("action", rec.get("action")),
        ("connector", rec.get("connector")),
        ("outcome", rec.get("outcome")),
        ("reason", rec.get("reason")),
        ("request id", rec.get("request_id")),
        ("prev hash", rec.get("prev_hash")),
        ("hash", rec.get("hash")),
    ]
    extra = {
        k: v
        for k, v in rec.items()
        if k
        not in {
            "seq",
            "ts",
            "workspace",
            "actor",
            "event",
            "action",
            "connector",
            "outcome",
            "reason",
            "request_id",
            "prev_hash",
            "hash",
            "detail",
            "resolved_late",
            "resolves",
        }
    }
    fields += [
        (k.replace("_", " "), json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v)
        for k, v in sorted(extra.items())
    ]
    # The late resolution, both ways (`AuditReader.annotated`): an `unknown` and the record of its real outcome.
    late, resolves = rec.get("resolved_late"), rec.get("resolves")
    if late is not None:
        fields.append(("resolved late", f"{late['outcome']}, record {late['seq']}"))
    if resolves is not None:
        was = resolves["outcome"] + (f": {resolves['reason']}" if resolves.get("reason") else "")
        fields.append(("resolves", f"record {resolves['seq']} (was {was})"))
    actor = rec.get("actor") or {}
    return {
        "seq": rec["seq"],
        "fields": [(name, visible(value)) for name, value in fields],
        "detail": escape(
            json.dumps(rec.get("detail") or {}, indent=2, ensure_ascii=False, sort_keys=True),
            keep_newlines=True,
        ),
        "raw": escape(json.dumps(rec, indent=2, ensure_ascii=False), keep_newlines=True),
        "request_id": rec.get("request_id") if isinstance(rec.get("request_id"), str) else "",
        "visitor": actor.get("email") if isinstance(actor.get("email"), str) else "",
        "workspace": rec.get("workspace") if isinstance(rec.get("workspace"), str) else "",
        "late": {"seq": late["seq"], "outcome": visible(late["outcome"])} if late else None,
        "resolves": {"seq": resolves["seq"], "outcome": visible(resolves["outcome"])} if resolves else None,
        "prev": rec["seq"] - 1 if rec["seq"] > 1 else None,
        "next": rec["seq"] + 1 if rec["seq"] < head else None,
    }


def connections_by_workspace(home: Home) -> list[dict[str, Any]]:
    """Every workspace with its connections: state, reason, expiry, last use, and for a connection that
    is not active the exact command that reconnects it."""
    from botctl import connections, workspaces
    from botctl.vault import Vault

    vault = Vault.open_readonly(home)
    if vault is None:
        return []
    with vault:
        spaces = workspaces.list_all(vault.conn)
        conns = connections.list_all(vault.conn)
    out = []
    for ws in spaces:
        items = [
            {
                "connector": visible(c.connector),
                "auth": visible(c.auth),
                "state": visible(c.status),
                "reason": visible(c.status_reason),
                "account": visible(c.account_label),
                "expires": visible(c.expires_at),
                "last_used": visible(c.last_used_at),
                "refreshed": visible(c.refreshed_at),
                "created": visible(c.created_at),
                "reconnect": visible(c.reconnect_command()) if c.status != "active" else "",
            }
            for c in conns
            if c.workspace_id == ws.id
        ]
        out.append(
            {
                "workspace": visible(ws.name),
                "plan": visible(ws.plan),
                "connections": items,
                "attention": sum(1 for i in items if i["reconnect"]),
            }
        )
    return out


ACTIVITY_SERIES = (("actions", "actions (ok)"), ("refusals", "refusals (denied)"), ("errors", "errors"))


def _series(outcome: str) -> str | None:
    """The series an `action.run` outcome counts in; None for an attempt that has a later record of its own
    (`retried`: the retry's record; `pending` is never an `action.run` outcome)."""
    if outcome in ("retried", "pending"):
        return None
    return {"ok": "actions", "denied": "refusals"}.get(outcome, "errors")


def activity(home: Home, days: int, *, today: datetime | None = None) -> dict[str, Any]:
    """`action.run` records per day per workspace over the last `days` days (UTC): actions that ran (ok),
    refusals (denied) and errors (error, unknown); `retried` attempts are left out (the retry that
    followed has its own record). An `unknown` whose real outcome was recorded later
    (`action.outcome_late`) counts under that outcome, on the day of the attempt. Zero-filled, oldest
    day first."""
    today = (today or datetime.now(UTC)).date()
    day_list = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    counts: dict[str, dict[str, list[int]]] = {}
    from botctl import store

    conn = store.open_audit_reader(home)
    if conn is not None:
        try:
            # Both reads up to one head: every unknown listed below was counted in `rows`.
            head = conn.execute("SELECT max(seq) FROM records").fetchone()[0] or 0
            rows = conn.execute(
                "SELECT substr(ts, 1, 10), workspace, outcome, count(*) FROM records "
                "WHERE event = 'action.run' AND ts >= ? AND seq <= ? GROUP BY 1, 2, 3",
                (day_list[0], head),
            ).fetchall()
            unknown = conn.execute(
                "SELECT seq, substr(ts, 1, 10), workspace FROM records "
                "WHERE event = 'action.run' AND outcome = 'unknown' AND ts >= ? AND seq <= ?",
                (day_list[0], head),
            ).fetchall()
        finally:
            conn.close()
        index = {d: i for i, d in enumerate(day_list)}

        def series(ws: str | None) -> dict[str, list[int]]:
            return counts.setdefault(
                visible(ws) or "(none)", {name: [0] * days for name, _ in ACTIVITY_SERIES}
            )

        for day, ws, outcome, n in rows:
            if day not in index:
                continue
            found, name = series(ws), _series(outcome)
            if name is not None:
                found[name][index[day]] += n
        # Unknowns resolved late: moved from errors to the series of their real outcome.
        reader = audit.AuditReader(home)
        try:
            late = reader.resolved_late(
                [{"seq": s, "event": "action.run", "outcome": "unknown"} for s, _, _ in unknown]
            )
        finally:
            reader.close()
        for seq, day, ws in unknown:
            name = _series(late[seq]["outcome"]) if seq in late and day in index else None
            if name is not None:
                series(ws)["errors"][index[day]] -= 1
                series(ws)[name][index[day]] += 1
    return {
        "days": day_list,
        "series": [name for name, _ in ACTIVITY_SERIES],
        "labels": dict(ACTIVITY_SERIES),
        "workspaces": [{"workspace": ws, **counts[ws]} for ws in sorted(counts)],
    }


class ChainStatus:
    """The chain's verdict (`audit.verify`, the same walk as `botctl audit verify`), recomputed when the
    head moved or `max_age_s` passed (an edit in the middle moves no head); one walk at a time."""

    def __init__(self, home: Home, *, max_age_s: float = 10.0) -> None:
        self.home = home
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._app = None
        self._cached: tuple[int, float, dict[str, Any]] | None = None

    def _head(self) -> int:
        reader = audit.AuditReader(self.home)
        try:
            return reader.head_seq()
        finally:
            reader.close()

    def get(self) -> dict[str, Any]:
        import time

        with self._lock:
            head = self._head()
            if (
                self._cached is not None
                and self._cached[0] == head
                and time.monotonic() - self._cached[1] < self.max_age_s
            ):
                return self._cached[2]
            try:
                if self._app is None:
                    from botctl.session import Session

                    self._app = Session(self.home, create=False)
                vault = self._app.vault
                verdict = audit.verify(self.home, vault.audit_key(), vault.conn).as_dict()
                result = {"state": "intact" if verdict["ok"] else "broken", **verdict}
            except BotctlError as exc:  # no master key here: records still show, the verdict cannot
                return {
                    "state": "unavailable",
                    "ok": None,
                    "problem": visible(exc.message),
                    "hint": visible(exc.hint),
                    "notes": [],
                }
            result["problem"] = visible(result.get("problem")) or None
            result["notes"] = [visible(n) for n in result.get("notes") or []]
            result.pop("sealed_breaks", None)
            self._cached = (head, time.monotonic(), result)
            return result

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
