"""Late outcomes read from the log: which `unknown` action.run an `action.outcome_late` record resolves, seen
from either end, and which late records a filter shows because the unknown they resolve matches it.

Functions of a reading connection (None while no record has been written), used by `AuditReader`. The
rule (docs/audit-format.md): a late record counts only when it names, in `detail.resolves.seq`, an earlier
record that is an `action.run` with outcome `unknown`.
"""

from __future__ import annotations

from typing import Any

from botctl.audit.records import _RECORD_COLUMNS, to_record

LATE_EVENT = "action.outcome_late"
_CHUNK = 500  # seqs per `IN (...)`, well under every SQLite build's parameter limit


def named(rec: dict[str, Any]) -> int | None:
    """The seq a late record says it resolves, when it is an earlier record's (else None)."""
    detail = rec.get("detail") if rec.get("event") == LATE_EVENT else None
    target = detail.get("resolves") if isinstance(detail, dict) else None
    seq = target.get("seq") if isinstance(target, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq < rec["seq"]:
        return seq
    return None


def is_unknown_run(rec: dict[str, Any] | None) -> bool:
    return rec is not None and rec.get("event") == "action.run" and rec.get("outcome") == "unknown"


def _with_node(found: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    if rec.get("node") is not None:
        found["node"] = rec["node"]
    return found


def _lates_after(conn: Any, seq: int, up_to: int | None = None) -> list[dict[str, Any]]:
    bound, args = ("", (seq,)) if up_to is None else (" AND seq <= ?", (seq, up_to))
    rows = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM records WHERE event = '{LATE_EVENT}' AND seq > ?{bound} ORDER BY seq",
        args,
    ).fetchall()
    return [to_record(r) for r in rows]


def targets(conn: Any, records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """For the late records among `records`: the `unknown` action.run each one resolves, whole, as
    {late seq: that record} (a late record naming anything else is left out)."""
    named_by = {r["seq"]: s for r in records if (s := named(r)) is not None}
    if not named_by or conn is None:
        return {}
    earlier = {}
    for seq in sorted(set(named_by.values())):  # one fixed statement: late records are few
        row = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq = ?", (seq,)).fetchone()
        if row is not None:
            earlier[seq] = to_record(row)
    return {late: earlier[seq] for late, seq in named_by.items() if is_unknown_run(earlier.get(seq))}


def resolves(conn: Any, records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """{late seq: {seq, outcome, reason, node?}} of the unknown each late record among `records` resolves."""
    return {
        late: _with_node({"seq": rec["seq"], "outcome": rec["outcome"], "reason": rec.get("reason")}, rec)
        for late, rec in targets(conn, records).items()
    }


def resolved_late(conn: Any, records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """{unknown seq: {seq, outcome, node?}} of the late record that resolves each unknown among `records`."""
    unknown = {r["seq"] for r in records if is_unknown_run(r)}
    if not unknown or conn is None:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for late in _lates_after(conn, min(unknown)):
        seq = named(late)
        if seq in unknown:
            out[seq] = _with_node({"seq": late["seq"], "outcome": late.get("outcome")}, late)
    return out


def shown_late(
    conn: Any, where: str, args: list[Any], *, after: int = 0, up_to: int | None = None
) -> list[int]:
    """The seqs (ascending, above `after`, up to `up_to`) of the late records that resolve an `unknown`
    action.run selected by `where` (a filter's SQL): a filter that shows an unknown shows how it ended.

    Read from the late records' side: they are few (a write whose node stalled past its lease), while
    the unknowns a filter selects can only be found by scanning every `action.run` (245 ms on 300,000
    records, against 0.3 ms for the filter's own latest 100). So: the late records (their index), the
    records they name (by primary key), and the filter applied to those alone."""
    if conn is None:
        return []
    named_by = {late["seq"]: s for late in _lates_after(conn, after, up_to) if (s := named(late)) is not None}
    if not named_by:
        return []
    wanted = sorted(set(named_by.values()))
    selected: set[int] = set()
    for i in range(0, len(wanted), _CHUNK):
        part = wanted[i : i + _CHUNK]
        rows = conn.execute(
            f"SELECT seq FROM records WHERE seq IN ({', '.join('?' * len(part))}) AND event = 'action.run' "
            f"AND outcome = 'unknown' AND ({where})",
            [*part, *args],
        ).fetchall()
        selected.update(r[0] for r in rows)
    return [late for late, seq in sorted(named_by.items()) if seq in selected]
