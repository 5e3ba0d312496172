"""The visitor's confirmation of a change a bot asked for over MCP.

A write asked for through the MCP endpoint does not run on the bot's word: `create` stores the exact params
(validated) with the visitor they were asked for and a plain-language summary, under an unguessable id that
expires after `TTL_S`. Only that visitor, with their own identity token, can answer it (`decide`), and only
once; confirming runs the stored params, never anything the bot sends later. Rows live in the vault
(`mcp_confirmations`, schema 8); once answered, the params are dropped from the row (its status stays, so a
second answer is refused). `waived` / `set_waived`: the per-workspace list of actions the operator lets run
without a confirmation (`botctl mcp waive`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store

if TYPE_CHECKING:
    from botctl.connectors.base import Visitor
    from botctl.session import Session
    from botctl.workspaces import Workspace

TTL_S = 300.0  # five minutes: long enough to read and click, short enough that a stale ask cannot be replayed
ID_PREFIX = "cnf_"
ID_SHAPE = re.compile(
    r"cnf_[A-Za-z0-9_-]{1,60}"
)  # what `create` issues (token_urlsafe): nothing else is looked up
_COLUMNS = (
    "id, workspace_id, action, params, params_sha256, visitor_sub, visitor_email, summary, request_id, "
    "created_at, expires_at, status, outcome"
)


@dataclass(frozen=True)
class Confirmation:
    id: str
    workspace_id: str
    action: str
    params: dict[str, Any] | None
    params_sha256: str
    visitor_sub: str
    visitor_email: str | None
    summary: dict[str, Any]
    request_id: str
    created_at: str
    expires_at: float
    status: str  # pending | confirmed | cancelled | expired
    outcome: str | None

    def public(self) -> dict[str, Any]:
        """What the bot and the widget are shown: the summary, never anyone else's data."""
        left = max(0, int(self.expires_at - time.time()))
        return {
            "confirmation_id": self.id,
            "action": self.action,
            "status": self.status,
            **self.summary,
            "expires_in_s": left if self.status == "pending" else 0,
        }

    def belongs_to(self, visitor: Visitor | None) -> bool:
        return visitor is not None and visitor.sub == self.visitor_sub and visitor.email == self.visitor_email


def digest(action: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps([action, params], sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _row(r: tuple[Any, ...]) -> Confirmation:
    return Confirmation(
        r[0],
        r[1],
        r[2],
        json.loads(r[3]) if r[3] is not None else None,
        r[4],
        r[5],
        r[6],
        json.loads(r[7]),
        r[8],
        r[9],
        float(r[10]),
        r[11],
        r[12],
    )


def summarize(spec: Any, vendor: str, params: dict[str, Any]) -> dict[str, Any]:
    """A plain-language account of exactly what will happen: the action's own description in the visitor's
    words, and every parameter that will be sent, labelled."""
    text = spec.description.rstrip(".")
    for said, meant in (
        ("the visitor's", "your"),
        ("The visitor's", "Your"),
        ("for the visitor", "for you"),
        ("the visitor", "you"),
        ("The visitor", "You"),
    ):
        text = text.replace(said, meant)
    details = []
    for key, value in params.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        # Never shortened: the visitor confirms exactly what will be sent (the schema and the 64 KiB body cap
        # bound it).
        details.append({"field": key, "label": key.replace("_", " ").capitalize(), "value": shown})
    lines = [f"{text} ({vendor})."] + [f"{d['label']}: {d['value']}" for d in details]
    return {"title": f"{text} ({vendor})", "details": details, "summary": "\n".join(lines)}


def create(
    app: Session,
    ws: Workspace,
    action: str,
    params: dict[str, Any],
    visitor: Visitor,
    summary: dict[str, Any],
    request_id: str,
    *,
    ttl: float = TTL_S,
) -> Confirmation:
    conn = app.vault.conn
    cid = ID_PREFIX + secrets.token_urlsafe(18)
    now = time.time()
    with store.transaction(conn):
        conn.execute(
            "DELETE FROM mcp_confirmations WHERE expires_at < ?", (now - 86400,)
        )  # keep the table small
        conn.execute(
            "INSERT INTO mcp_confirmations (id, workspace_id, action, params, params_sha256, visitor_sub, visitor_email, "
            "summary, request_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cid,
                ws.id,
                action,
                json.dumps(params, sort_keys=True),
                digest(action, params),
                visitor.sub,
                visitor.email,
                json.dumps(summary),
                request_id,
                store.now_iso(),
                now + ttl,
            ),
        )
    found = get(app, ws, cid)
    assert found is not None
    return found


def get(app: Session, ws: Workspace, cid: str) -> Confirmation | None:
    if not isinstance(cid, str) or not ID_SHAPE.fullmatch(cid):
        return None
    r = app.vault.conn.execute(
        f"SELECT {_COLUMNS} FROM mcp_confirmations WHERE id = ? AND workspace_id = ?", (cid, ws.id)
    ).fetchone()
    return _row(r) if r else None


def pending_for(app: Session, ws: Workspace, visitor: Visitor) -> list[Confirmation]:
    """The visitor's own confirmations still waiting in this workspace, oldest first (at most 20)."""
    rows = app.vault.conn.execute(
        f"SELECT {_COLUMNS} FROM mcp_confirmations WHERE workspace_id = ? AND visitor_sub = ? AND status = 'pending' "
        "AND expires_at > ? ORDER BY expires_at LIMIT 20",
        (ws.id, visitor.sub, time.time()),
    ).fetchall()
    return [r for r in map(_row, rows) if r.belongs_to(visitor)]


def decide(
    app: Session, ws: Workspace, cid: str, visitor: Visitor | None, decision: str
) -> tuple[Confirmation | None, str | None]:
    """Answer a confirmation as `visitor` ("confirm" or "cancel"): (the row as it was, None) when this answer is
    the one that counts, else (row or None, refusal code): `not_found` (no such id here, or someone else's: the
    same answer, so ids of others cannot be probed), `confirmation_expired`, `confirmation_used`.
    The pending → answered step is one conditional UPDATE: two answers racing, one wins."""
    row = get(app, ws, cid)
    if row is None or not row.belongs_to(visitor):
        return None, "not_found"
    if row.status == "expired" or (row.status == "pending" and row.expires_at <= time.time()):
        app.vault.conn.execute(
            "UPDATE mcp_confirmations SET status = 'expired', params = NULL, decided_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (store.now_iso(), cid),
        )
        return row, "confirmation_expired"
    if row.status != "pending":
        return row, "confirmation_used"
    if row.params is None or digest(row.action, row.params) != row.params_sha256:
        return row, "confirmation_used"  # the stored params were tampered with: never run them
    status = "confirmed" if decision == "confirm" else "cancelled"
    cur = app.vault.conn.execute(
        "UPDATE mcp_confirmations SET status = ?, decided_at = ?, params = CASE WHEN ? = 'confirmed' THEN params END "
        "WHERE id = ? AND status = 'pending' AND expires_at > ?",
        (status, store.now_iso(), status, cid, time.time()),
    )
    if cur.rowcount != 1:
        return row, "confirmation_used"
    return row, None


async def expire_due(app: Session) -> int:
    """Record every confirmation that expired unanswered (`action.confirmation`, denied, confirmation_expired,
    actor system): the chain shows the request's end even when nobody came back. Returns how many."""
    from botctl import workspaces

    rows = app.vault.conn.execute(
        "SELECT c.id, w.name, c.action, c.request_id FROM mcp_confirmations c JOIN workspaces w "
        "ON w.id = c.workspace_id WHERE c.status = 'pending' AND c.expires_at <= ?",
        (time.time(),),
    ).fetchall()
    done = 0
    for cid, ws_name, action, request_id in rows:
        cur = app.vault.conn.execute(
            "UPDATE mcp_confirmations SET status = 'expired', params = NULL, decided_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (store.now_iso(), cid),
        )
        if cur.rowcount != 1:
            continue  # answered meanwhile
        await app.aaudit(
            "action.confirmation",
            workspace=ws_name if workspaces.NAME_RE.fullmatch(ws_name) else None,
            actor={"type": "system"},
            action=action,
            connector=action.split(".")[0],
            outcome="denied",
            reason="confirmation_expired",
            detail={"confirmation_id": cid, "requested_in": request_id},
        )
        done += 1
    return done


def finish(app: Session, cid: str, outcome: str) -> None:
    """The confirmed action ran (or failed): keep the outcome code, drop the params."""
    app.vault.conn.execute(
        "UPDATE mcp_confirmations SET outcome = ?, params = NULL WHERE id = ?", (outcome, cid)
    )


def waived(conn: Any, ws: Workspace) -> list[str]:
    r = conn.execute("SELECT waived_actions FROM mcp_settings WHERE workspace_id = ?", (ws.id,)).fetchone()
    try:
        names = json.loads(r[0]) if r else []
    except ValueError:
        names = []
    return [n for n in names if isinstance(n, str)]


def set_waived(app: Session, ws: Workspace, names: list[str]) -> list[str]:
    """Set the actions that run over MCP without the visitor's confirmation (audited)."""
    names = sorted(set(names))
    conn = app.vault.conn
    with store.transaction(conn):
        before = waived(conn, ws)
        conn.execute(
            "INSERT INTO mcp_settings (workspace_id, waived_actions) VALUES (?, ?) ON CONFLICT(workspace_id) "
            "DO UPDATE SET waived_actions = excluded.waived_actions",
            (ws.id, json.dumps(names)),
        )
        app.audit("mcp.confirmation_waived", workspace=ws.name, detail={"before": before, "after": names})
    return names
