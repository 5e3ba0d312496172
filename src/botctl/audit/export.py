"""Export: the log (or a time range of it) as NDJSON or CSV, streamed row by row in bounded memory.

NDJSON lines are the *stored* bytes of each record, spliced, not re-rendered::

    {"seq":N,<the stored body without its braces>,"prev_hash":"<64 hex>","hash":"<64 hex>"}

so an independent verifier recovers the exact bytes the MAC covers (`{` + the middle + `}`) and checks
them without trusting this code to have rendered anything (docs/audit-format.md, tools/verify-audit.mjs).
A body that is not a JSON object (a damaged row) is exported as ``"raw_body": "<the text>"`` instead.
The file sink writes the same lines (`record_line`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from botctl import store
from botctl.home import Home

FORMATS = ("ndjson", "csv")
CSV_COLUMNS = (
    "seq",
    "v",
    "ts",
    "workspace",
    "actor_type",
    "actor_sub",
    "actor_email",
    "event",
    "action",
    "connector",
    "outcome",
    "reason",
    "request_id",
    "detail",
    "prev_hash",
    "hash",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such cells get a
# leading apostrophe in CSV exports. NDJSON is never altered.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def record_line(seq: int, body: str, prev_hash: str, hash_: str) -> str:
    """One NDJSON line carrying the stored body verbatim (no trailing newline)."""
    if len(body) > 2 and body[0] == "{" and body[-1] == "}" and "\n" not in body and "\r" not in body:
        return f'{{"seq":{seq},{body[1:-1]},"prev_hash":"{prev_hash}","hash":"{hash_}"}}'
    return (
        f'{{"seq":{seq},"raw_body":{json.dumps(body, ensure_ascii=False)},"prev_hash":"{prev_hash}",'
        f'"hash":"{hash_}"}}'
    )


def checkpoint_line(cp: tuple[int, str, str] | None) -> str | None:
    if cp is None:
        return None
    return json.dumps({"checkpoint": {"seq": cp[0], "hash": cp[1], "mac": cp[2]}}, separators=(",", ":"))


def iter_rows(
    home: Home, *, since: str | None = None, until: str | None = None, after_seq: int = 0
) -> Iterator[tuple[int, str, str, str]]:
    """(seq, body, prev_hash, hash) in seq order, `since <= ts < until`, one row at a time."""
    conn = store.open_audit_reader(home)
    if conn is None:
        return
    try:
        clauses, args = ["seq > ?"], [after_seq]
        if since is not None:
            clauses.append("ts >= ?")
            args.append(since)
        if until is not None:
            clauses.append("ts < ?")
            args.append(until)
        cur = conn.execute(
            f"SELECT seq, body, prev_hash, hash FROM records WHERE {' AND '.join(clauses)} ORDER BY seq", args
        )
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                return
            yield from rows
    finally:
        conn.close()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(seq: int, body: str, prev_hash: str, hash_: str) -> list[str]:
    try:
        rec = json.loads(body)
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        rec = {"detail": {"raw_body": body}}
    actor = rec.get("actor") if isinstance(rec.get("actor"), dict) else {}
    values = {
        **rec,
        "seq": seq,
        "v": rec.get("v", 1),
        "actor_type": actor.get("type"),
        "actor_sub": actor.get("sub"),
        "actor_email": actor.get("email"),
        "prev_hash": prev_hash,
        "hash": hash_,
    }
    return [_csv_cell(values.get(c)) for c in CSV_COLUMNS]


def write_export(
    home: Home,
    out,
    *,
    fmt: str,
    since: str | None = None,
    until: str | None = None,  # noqa: ANN001
    checkpoint: tuple[int, str, str] | None = None,
) -> int:
    """Write the export to the binary stream `out`; returns how many records were written."""
    import csv
    import io

    count = 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    for row in iter_rows(home, since=since, until=until):
        if writer is not None:
            writer.writerow(csv_row(*row))
        else:
            buf.write(record_line(*row))
            buf.write("\n")
        count += 1
        if count % 1000 == 0:
            out.write(buf.getvalue().encode("utf-8", "surrogateescape"))
            buf.seek(0)
            buf.truncate()
    if fmt == "ndjson" and checkpoint is not None:
        buf.write(checkpoint_line(checkpoint) + "\n")
    out.write(buf.getvalue().encode("utf-8", "surrogateescape"))
    out.flush()
    return count


def read_checkpoint(vault_conn: sqlite3.Connection) -> tuple[int, str, str] | None:
    from botctl.audit.chain import _CHECKPOINT_SQL

    row = vault_conn.execute(_CHECKPOINT_SQL).fetchone()
    return tuple(row) if row else None
