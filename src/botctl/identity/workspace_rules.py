"""A workspace's token rules (`identity rules`): issuer, lifetime, email_verified, Unicode emails, jti replay."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botctl import store
from botctl.errors import UsageError

if TYPE_CHECKING:
    from botctl.session import Session


# -- per-workspace rules -------------------------------------------------------------------------------
#
# `identity_issuer` and `identity_max_lifetime` are columns of `workspaces` (schema 4). The newer rules
# live as one JSON object in the vault's `meta` table under `identity_rules:<workspace id>` until the
# workspaces table has a column for them; `workspaces.delete` removes that row with the workspace.

_RULES_KEY = "identity_rules:{ws_id}"


class WorkspaceLike(Protocol):
    """What the rules need of a workspace (a botctl.workspaces.Workspace). Not that class itself, even for
    type checking: workspaces.delete imports this module to remove the rules, and that would be a cycle."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


RULE_DEFAULTS: dict[str, bool] = {
    "require_email_verified": False,
    "unicode_email": False,
    "jti_replay": False,
}


@dataclass(frozen=True)
class Rules:
    issuer: str | None
    max_lifetime: int
    require_email_verified: bool = False
    unicode_email: bool = False
    jti_replay: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "max_lifetime_s": self.max_lifetime,
            "require_email_verified": self.require_email_verified,
            "unicode_email": self.unicode_email,
            "jti_replay": self.jti_replay,
        }


def rules_key(ws_id: str) -> str:
    return _RULES_KEY.format(ws_id=ws_id)


def _stored_rules(conn: sqlite3.Connection, ws: WorkspaceLike) -> dict[str, bool]:
    import json

    row = conn.execute("SELECT value FROM meta WHERE key = ?", (rules_key(ws.id),)).fetchone()
    try:
        stored = json.loads(row[0]) if row else {}
    except ValueError:
        stored = {}
    return {k: stored.get(k) is True for k in RULE_DEFAULTS}


def rules(conn: sqlite3.Connection, ws: WorkspaceLike) -> Rules:
    issuer, max_lifetime = settings(conn, ws)
    return Rules(issuer, max_lifetime, **_stored_rules(conn, ws))


def check_issuer(issuer: str) -> str:
    if not issuer or issuer != issuer.strip() or len(issuer) > 512 or not issuer.isprintable():
        raise UsageError(
            f"invalid --issuer {issuer!r}.",
            hint="Give the exact iss your site puts in its tokens (e.g. https://shop.example.com); "
            "--no-issuer stops requiring one.",
        )
    return issuer


def set_settings(
    app: Session,
    ws: WorkspaceLike,
    *,
    issuer: str | None = None,
    max_lifetime: int | None = None,
    clear_issuer: bool = False,
    require_email_verified: bool | None = None,
    unicode_email: bool | None = None,
    jti_replay: bool | None = None,
) -> Rules:
    """Change a workspace's token rules (one transaction, one `workspace.identity_changed` record)."""
    import json

    changes: dict[str, Any] = {}
    if clear_issuer:
        changes["identity_issuer"] = None
    elif issuer is not None:
        changes["identity_issuer"] = check_issuer(issuer)
    if max_lifetime is not None:
        if not 60 <= max_lifetime <= 24 * 3600:
            raise UsageError("--max-lifetime must be between 1m and 24h.")
        changes["identity_max_lifetime"] = max_lifetime
    flags = {
        k: v
        for k, v in (
            ("require_email_verified", require_email_verified),
            ("unicode_email", unicode_email),
            ("jti_replay", jti_replay),
        )
        if v is not None
    }
    if not changes and not flags:
        raise UsageError("nothing to change.", hint="Give --issuer, --no-issuer or --max-lifetime.")
    conn = app.vault.conn
    with store.transaction(conn):
        if changes:
            sets = ", ".join(f"{k} = ?" for k in changes)
            conn.execute(
                f"UPDATE workspaces SET {sets}, updated_at = ? WHERE id = ?",
                (*changes.values(), store.now_iso(), ws.id),
            )
        if flags:
            merged = {**_stored_rules(conn, ws), **flags}
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                "excluded.value",
                (rules_key(ws.id), json.dumps(merged, sort_keys=True)),
            )
            if not changes:
                conn.execute("UPDATE workspaces SET updated_at = ? WHERE id = ?", (store.now_iso(), ws.id))
        app.audit("workspace.identity_changed", workspace=ws.name, detail={**changes, **flags})
    return rules(conn, ws)


def settings(conn: sqlite3.Connection, ws: WorkspaceLike) -> tuple[str | None, int]:
    row = conn.execute(
        "SELECT identity_issuer, identity_max_lifetime FROM workspaces WHERE id = ?", (ws.id,)
    ).fetchone()
    return row[0], int(row[1])
