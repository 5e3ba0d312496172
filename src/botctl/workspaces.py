"""Workspaces: one tenant each, with its own key, plan, allowed origins, connections and knowledge."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import Conflict, NotFound, UsageError
from botctl.vault import WorkspaceRef

if TYPE_CHECKING:
    from botctl.session import Session

PLANS = ("free", "pro", "business")
ACTION_PLANS = ("pro", "business")
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])$")
_COLUMNS = "id, name, plan, display_name, origins, created_at, updated_at"


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    plan: str
    display_name: str | None
    origins: tuple[str, ...]
    created_at: str
    updated_at: str

    @property
    def ref(self) -> WorkspaceRef:
        return WorkspaceRef(self.id, self.name)

    @property
    def actions_allowed(self) -> bool:
        return self.plan in ACTION_PLANS

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "plan": self.plan,
            "display_name": self.display_name,
            "origins": list(self.origins),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _row(r: tuple) -> Workspace:
    return Workspace(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6])


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or "") or "--" in name:  # fullmatch: "$" alone lets a trailing newline in
        raise UsageError(
            f"invalid workspace name {name!r}.",
            hint="Use 2-63 characters: lowercase letters, digits and single hyphens, not at either end (e.g. acme-support).",
        )
    return name


def validate_plan(plan: str) -> str:
    if plan not in PLANS:
        raise UsageError(f"unknown plan {plan!r}.", hint=f"Choose one of: {', '.join(PLANS)}.")
    return plan


def normalize_origin(url: str) -> str:
    """An origin as browsers send it: scheme://host[:port], lowercase, default port dropped."""
    from urllib.parse import urlsplit

    bad = UsageError(
        f"invalid origin {url!r}.",
        hint="Give the site's origin: scheme and host, optional port, no path (e.g. https://shop.example.com).",
    )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise bad
    if parts.path not in ("", "/") or parts.query or parts.fragment or "*" in url:
        raise bad
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def normalize_origins(urls: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for u in urls:
        seen[normalize_origin(u)] = None
    return tuple(seen)


def list_all(conn: sqlite3.Connection) -> list[Workspace]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM workspaces ORDER BY name")]


def find(conn: sqlite3.Connection, name: str) -> Workspace | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM workspaces WHERE name = ?", (name,)).fetchone()
    return _row(r) if r else None


def get(conn: sqlite3.Connection, name: str) -> Workspace:
    ws = find(conn, name)
    if ws is None:
        from botctl.suggest import hint

        names = [r[0] for r in conn.execute("SELECT name FROM workspaces")]
        raise NotFound(
            f"no workspace named {name!r}.",
            hint=hint(name, names, "See `botctl workspace list`."),
            code="unknown_workspace",
        )
    return ws


def create(
    app: Session,
    name: str,
    *,
    plan: str = "free",
    origins: list[str] | None = None,
    display_name: str | None = None,
) -> Workspace:
    """Validate everything first, then create the row and its key in one transaction."""
    validate_name(name)
    validate_plan(plan)
    clean_origins = normalize_origins(origins or [])
    now = store.now_iso()
    ws_id = "ws_" + os.urandom(8).hex()
    vault = app.vault
    with store.transaction(vault.conn):
        if find(vault.conn, name) is not None:
            raise Conflict(f"workspace {name!r} already exists.", hint=f"See `botctl workspace show {name}`.")
        vault.conn.execute(
            f"INSERT INTO workspaces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ws_id, name, plan, display_name, json.dumps(list(clean_origins)), now, now),
        )
        vault.create_workspace_key(WorkspaceRef(ws_id, name))
        app.audit(
            "workspace.created",
            workspace=name,
            detail={"plan": plan, "origins": list(clean_origins), "key_version": 1},
        )
    return get(vault.conn, name)


def update(app: Session, name: str, **changes: Any) -> Workspace:
    allowed = {"plan", "origins", "display_name"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    if "plan" in changes:
        validate_plan(changes["plan"])
    if "origins" in changes:
        changes["origins"] = json.dumps(list(normalize_origins(changes["origins"])))
    vault = app.vault
    with store.transaction(vault.conn):
        before = get(vault.conn, name)
        sets = ", ".join(f"{k} = ?" for k in changes)
        vault.conn.execute(
            f"UPDATE workspaces SET {sets}, updated_at = ? WHERE name = ?",
            (*changes.values(), store.now_iso(), name),
        )
        after = get(vault.conn, name)
        diff = {
            k: {"from": before.as_dict()[k], "to": after.as_dict()[k]}
            for k in ("plan", "origins", "display_name")
            if before.as_dict()[k] != after.as_dict()[k]
        }
        event = (
            "workspace.plan_changed"
            if set(diff) == {"plan"}
            else ("workspace.origins_changed" if set(diff) == {"origins"} else "workspace.updated")
        )
        app.audit(event, workspace=name, detail=diff)
    return after


def delete(app: Session, name: str) -> Workspace:
    """Crypto-shred: the workspace's keys go first (secure_delete zeroes their pages), then its rows."""
    vault = app.vault
    with store.transaction(vault.conn):
        ws = get(vault.conn, name)
        secrets_count = vault.conn.execute(
            "SELECT count(*) FROM secrets WHERE workspace_id = ?", (ws.id,)
        ).fetchone()[0]
        vault.conn.execute("DELETE FROM workspace_keys WHERE workspace_id = ?", (ws.id,))
        from botctl.knowledge import purge_workspace

        purge_workspace(vault.conn, ws.id)  # the FTS index is a virtual table: no ON DELETE CASCADE there
        from botctl.identity.workspace_rules import rules_key

        vault.conn.execute("DELETE FROM meta WHERE key = ?", (rules_key(ws.id),))  # its identity rules
        vault.conn.execute("DELETE FROM workspaces WHERE id = ?", (ws.id,))
        app.audit(
            "workspace.deleted", workspace=name, detail={"id": ws.id, "secrets_shredded": secrets_count}
        )
    vault.forget_workspace_keys(ws.ref)
    vault.shred()  # blocked by a reader's old snapshot: `vault.shred_pending`, finished at the next open
    return ws


def rotate_key(app: Session, name: str) -> tuple[Workspace, int]:
    vault = app.vault
    with store.transaction(vault.conn):
        ws = get(vault.conn, name)
        version = vault.rotate_workspace_key(ws.ref)
        app.audit("workspace.key_rotated", workspace=name, detail={"key_version": version})
    vault.shred()
    return ws, version
