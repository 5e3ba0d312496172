"""Write-ahead intents for vendor writes: no write at a vendor without a record of it.

An action that may change something at a vendor (`Action.writes`) is made pending in the vault and
recorded as `action.started` (durably, in the audit chain; its seq noted on the row) *before* the
vendor is called; its outcome record clears the pending row. A process killed in between (after the
vendor may have applied the write, before its outcome was recorded) leaves the row behind; the
provider's next start (and `botctl actions run`) turns every row whose owner is gone into an
`action.run` record with outcome `unknown` and reason `interrupted`, so the operator sees exactly
which writes need a look at the vendor's side. A row whose outcome record did make it (killed between
that record and clearing the row) is just cleared: one outcome per write, never two.

Owners are `host:pid:nonce`: a row is recovered only when its process is provably gone (same host,
pid not running, or the pid now belongs to the recovering process itself), or, on a PostgreSQL home
shared by several nodes, when the row's node is another node whose heartbeat has lapsed (botctl/nodes.py):
every live provider looks after each heartbeat, so a dead node's writes are on record within about
LAPSE_S + HEARTBEAT_S. A row is claimed (its owner swapped for the recovering process's, one conditional
UPDATE) before its record is written, so two live nodes never both record it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

from botctl import store

if TYPE_CHECKING:
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


def end(app: Session, pending_id: int) -> None:
    """The outcome is recorded: nothing is pending any more."""
    app.vault.conn.execute("DELETE FROM pending_actions WHERE id = ?", (pending_id,))


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


def _claim(app: Session, row: dict[str, Any]) -> bool:
    """Make the row ours before recording it: of several live nodes recovering at once, one does."""
    cur = app.vault.conn.execute(
        "UPDATE pending_actions SET owner = ? WHERE id = ? AND owner = ?", (owner(), row["id"], row["owner"])
    )
    return cur.rowcount == 1


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
    to the log and only clearing the row did not, in which case there is nothing to add."""
    n = 0
    for row in abandoned(app):
        if not _claim(app, row):
            continue
        if row["started_seq"] is not None and _recorded(app, row["id"], row["started_seq"]):
            end(app, row["id"])
            continue
        reached = row["started_seq"] is not None
        await app.aaudit(
            "action.run",
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
        end(app, row["id"])
        n += 1
    return n
