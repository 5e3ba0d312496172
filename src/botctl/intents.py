"""Write-ahead intents for vendor writes: no write at a vendor without a record of it.

An action that may change something at a vendor (`Action.writes`) is made pending in the vault and
recorded as `action.started` (durably, in the audit chain; its seq noted on the row) *before* the
vendor is called. A process killed in between (after the vendor may have applied the write, before its
outcome was recorded) leaves the row behind; the provider's next start (and `botctl actions run`) turns
every row whose owner is gone into an `action.run` record with outcome `unknown` and reason
`interrupted`, so the operator sees exactly which writes need a look at the vendor's side.

Owners are `host:pid:nonce`: a row is recovered only when its process is provably gone (same host,
pid not running, or the pid now belongs to the recovering process itself), or, on a PostgreSQL home
shared by several nodes, when the row's node is another node whose heartbeat has lapsed (botctl/nodes.py):
every live provider looks after each heartbeat, so a dead node's writes are on record within about
LAPSE_S + HEARTBEAT_S.

Fencing: one outcome record per write, whoever writes it. A write's outcome record and the clearing of its
row are one transaction, conditional on the row still being there under the owner its writer saw
(`clearing`, a `Guard` of the audit writer): the owner's `action.run` clears its own row; a recovering
process's `unknown` clears the row it found abandoned. Whichever commits first wins; the other finds the
row gone and writes no `action.run`. A node that was only stalled past the lapse (a frozen VM, a long
pause) and resumes with its write's real outcome records it as `action.outcome_late` instead, naming the
`unknown` record it resolves (`resolution`): the chain keeps one outcome per request and the truth.
A row whose outcome record made it but whose clearing did not (SQLite: audit.db and vault.db are two
files; killed between their commits) is just cleared on recovery.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

from botctl import store

if TYPE_CHECKING:
    from botctl.audit.writer import Guard
    from botctl.session import Session

_OWNER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
INTERRUPTED = (
    "The process running this action stopped before its outcome was recorded; the vendor may or "
    "may not have applied it: check there."
)
NOT_SENT = "The process running this action stopped before the vendor was called; nothing was sent."


def owner() -> str:
    global _OWNER
    host, pid, _ = _OWNER.rsplit(":", 2)
    if int(pid) != os.getpid():  # forked: a new process is a new owner
        _OWNER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    return _OWNER


def begin(
    app: Session,
    *,
    workspace: str,
    action: str,
    connector: str | None,
    actor: dict[str, Any],
    request_id: str | None,
) -> int:
    """Make the write pending (before its `action.started` record); returns the pending id."""
    row = app.vault.conn.execute(
        "INSERT INTO pending_actions (workspace, action, connector, actor, request_id, owner, started_at, node) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            workspace,
            action,
            connector,
            json.dumps(actor, sort_keys=True),
            request_id,
            owner(),
            store.now_iso(),
            app.node,
        ),
    ).fetchone()
    return int(row[0])


def started(app: Session, pending_id: int, seq: int) -> None:
    """Its `action.started` record is durable at `seq`: from here on, the vendor may be called."""
    app.vault.conn.execute("UPDATE pending_actions SET started_seq = ? WHERE id = ?", (seq, pending_id))


def clearing(pending_id: int, row_owner: str | None = None) -> Guard:
    """The condition a write's final record is written under (botctl.audit.writer.Guard): its row is still
    pending under `row_owner` (default: this process), and is deleted in the record's own transaction."""
    who = owner() if row_owner is None else row_owner

    def guard(conn: Any) -> bool:
        cur = conn.execute("DELETE FROM pending_actions WHERE id = ? AND owner = ?", (pending_id, who))
        return cur.rowcount == 1

    return guard


def resolution(
    app: Session, pending_id: int, request_id: str | None, after_seq: int
) -> dict[str, Any] | None:
    """The `action.run` record another process wrote for this write (after its `action.started` at
    `after_seq`) while its own process stalled: {seq, outcome, node?}, or None if there is none."""
    from botctl.audit import AuditReader, Filters

    reader = AuditReader(app.home)
    try:
        found = reader.after(after_seq, Filters(event="action.run", request_id=request_id))
    finally:
        reader.close()
    for rec in found:
        if (rec.get("detail") or {}).get("pending_id") == pending_id:
            out = {"seq": rec["seq"], "outcome": rec.get("outcome")}
            if rec.get("node") is not None:
                out["node"] = rec["node"]
            return out
    return None


def _gone(row_owner: str) -> bool:
    host, pid_s, _nonce = row_owner.rsplit(":", 2)
    if host != socket.gethostname():
        return False  # another machine's process: cannot tell
    pid = int(pid_s)
    if pid == os.getpid():
        return row_owner != owner()  # our pid, an earlier process's nonce: that process is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def abandoned(app: Session) -> list[dict[str, Any]]:
    rows = app.vault.conn.execute(
        "SELECT id, workspace, action, connector, actor, request_id, owner, started_at, started_seq, node "
        "FROM pending_actions ORDER BY id"
    ).fetchall()
    keys = (
        "id",
        "workspace",
        "action",
        "connector",
        "actor",
        "request_id",
        "owner",
        "started_at",
        "started_seq",
        "node",
    )
    if not rows:
        return []
    lapsed = _lapsed_nodes(app, {r[9] for r in rows})
    return [
        dict(zip(keys, r, strict=True)) for r in rows if r[6] != owner() and (_gone(r[6]) or r[9] in lapsed)
    ]


def _lapsed_nodes(app: Session, named: set[str | None]) -> set[str]:
    """Other nodes named by pending rows whose heartbeat has lapsed (none on a SQLite home)."""
    others = {n for n in named if n is not None and n != app.node}
    if not others or app.node is None:
        return set()
    from botctl import nodes

    return nodes.lapsed(app.vault.conn) & others


def _recorded(app: Session, pending_id: int, after_seq: int) -> bool:
    """Whether the write's outcome record exists (the process died after writing it, before clearing the
    row). Only records after its `action.started` are read: few, right after a crash."""
    conn = store.open_audit_reader(app.home)
    if conn is None:
        return False
    try:
        rows = conn.execute(
            "SELECT body FROM records WHERE event = 'action.run' AND seq > ? ORDER BY seq", (after_seq,)
        )
        return any(json.loads(body).get("detail", {}).get("pending_id") == pending_id for (body,) in rows)
    finally:
        conn.close()


async def recover(app: Session) -> int:
    """Record every write whose process died before its outcome was recorded; returns how many.

    Killed before its `action.started` was durable: the vendor was never called (outcome `error`).
    After it: the vendor may have applied it (outcome `unknown`) — unless the outcome record made it
    to the log and only clearing the row did not, in which case there is nothing to add. Each record is
    written only if the row is still as found (`clearing`): of several live nodes recovering at once, one
    records it; a stalled owner that resumed in the meantime has recorded it itself."""
    n = 0
    for row in abandoned(app):
        if row["started_seq"] is not None and _recorded(app, row["id"], row["started_seq"]):
            clearing(row["id"], row["owner"])(app.vault.conn)
            continue
        reached = row["started_seq"] is not None
        rec = await app.aaudit_if(
            "action.run",
            clearing(row["id"], row["owner"]),
            workspace=row["workspace"],
            actor=json.loads(row["actor"]),
            action=row["action"],
            connector=row["connector"],
            outcome="unknown" if reached else "error",
            reason="interrupted",
            request_id=row["request_id"],
            detail={
                "pending_id": row["id"],
                "started_at": row["started_at"],
                "message": INTERRUPTED if reached else NOT_SENT,
            },
        )
        if rec is not None:
            n += 1
    return n
