"""Connections: one per (workspace, connector), credentials always encrypted in the vault.

The credential fields (`api_key`, `api_secret`, `access_token`, `refresh_token`) are stored as
secrets owned by the connection id; the row itself holds only what may be shown: status, account
label, non-secret config (tenant, base URL), scopes, timestamps.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import BotctlError, CredentialRejected, NotFound, Transient, UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.app import App
    from botctl.connectors.base import ActionError, Connector
    from botctl.workspaces import Workspace

STATUSES = ("active", "needs_reauth", "error")
SECRET_FIELDS = ("api_key", "api_secret", "access_token", "refresh_token")
_COLUMNS = ("id, workspace_id, connector, auth, status, status_reason, account_label, config, scopes, "
            "created_at, updated_at, last_used_at, expires_at")


@dataclass(frozen=True)
class Connection:
    id: str
    workspace_id: str
    workspace: str
    connector: str
    auth: str
    status: str
    status_reason: str | None
    account_label: str | None
    config: dict[str, str]
    scopes: tuple[str, ...]
    created_at: str
    updated_at: str
    last_used_at: str | None
    expires_at: str | None

    @property
    def base_url(self) -> str | None:
        return self.config.get("base_url_resolved")

    def public_config(self) -> dict[str, str]:
        return {k: v for k, v in self.config.items() if k != "base_url_resolved"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "connector": self.connector,
            "auth": self.auth,
            "status": self.status,
            "status_reason": self.status_reason,
            "account": self.account_label,
            "config": self.public_config(),
            "base_url": self.base_url,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_used_at": self.last_used_at,
            "expires_at": self.expires_at,
        }


def _row(r: tuple, workspace: str) -> Connection:
    return Connection(r[0], r[1], workspace, r[2], r[3], r[4], r[5], r[6], json.loads(r[7]),
                      tuple(json.loads(r[8])), r[9], r[10], r[11], r[12])


def list_all(conn: sqlite3.Connection, workspace: Workspace | None = None) -> list[Connection]:
    sql = (f"SELECT {', '.join('c.' + c.strip() for c in _COLUMNS.split(','))}, w.name FROM connections c "
           "JOIN workspaces w ON w.id = c.workspace_id")
    args: tuple = ()
    if workspace is not None:
        sql += " WHERE c.workspace_id = ?"
        args = (workspace.id,)
    rows = conn.execute(sql + " ORDER BY w.name, c.connector", args).fetchall()
    return [_row(r[:-1], r[-1]) for r in rows]


def find(conn: sqlite3.Connection, ws: Workspace, connector: str) -> Connection | None:
    r = conn.execute(f"SELECT {_COLUMNS} FROM connections WHERE workspace_id = ? AND connector = ?",
                     (ws.id, connector)).fetchone()
    return _row(r, ws.name) if r else None


def get(conn: sqlite3.Connection, ws: Workspace, connector: str) -> Connection:
    c = find(conn, ws, connector)
    if c is None:
        raise NotFound(f"{connector} is not connected in workspace {ws.name!r}.",
                       hint=f"Connect it with: botctl connect {connector} -w {ws.name}", code="not_connected")
    return c


def credential(app: App, ws: Workspace, connection: Connection) -> dict[str, Secret]:
    out: dict[str, Secret] = {}
    for field in SECRET_FIELDS:
        value = app.vault.get_secret(ws.ref, connection.id, field)
        if value is not None:
            out[field] = value
    return out


def resolve_connector(name: str) -> Connector:
    from botctl.connectors import registry

    c = registry.get(name)
    if c is None:
        names = ", ".join(x.name for x in registry.all_connectors())
        raise NotFound(f"unknown connector {name!r}.", hint=f"Known connectors: {names}.", code="unknown_connector")
    return c


def resolve_config(connector: Connector, config: Mapping[str, str | None], sandbox: str | None) -> dict[str, str]:
    """Normalised config plus the resolved base URL (sandbox or the vendor's)."""
    from botctl.connectors import urls
    from botctl.connectors.base import ActionError

    given = {k: v for k, v in config.items() if v}
    extra = sorted(set(given) - set(connector.config_fields))
    if extra:
        raise UsageError(f"{connector.vendor} does not take --{extra[0].replace('_', '-')}.",
                         hint=f"It takes: {', '.join('--' + f.replace('_', '-') for f in connector.config_fields) or 'no settings'}.")
    try:
        clean = urls.normalize_config(connector, given)
        if sandbox:
            sandbox = sandbox.rstrip("/")
            if not sandbox.startswith(("http://", "https://")):
                raise UsageError(f"--sandbox {sandbox!r} is not a URL.", hint="Use e.g. --sandbox http://127.0.0.1:8790")
            resolved = urls.sandbox_url_for(connector, clean, sandbox)
            clean["sandbox"] = sandbox
        else:
            resolved = urls.base_url_for(connector, clean)
    except ActionError as exc:
        raise UsageError(exc.message) from None
    clean["base_url_resolved"] = resolved
    return clean


def error_for(exc: ActionError, vendor: str) -> BotctlError:
    """Map a vendor-call failure at connect/test time to a CLI error with a documented exit code."""
    code = exc.code
    if code in ("needs_reauth", "forbidden", "missing_scope"):
        return CredentialRejected(f"{vendor} rejected the credential: {exc.message}",
                                  hint="Check the key (and its permissions), then connect again.")
    if code == "not_found":
        return UsageError(f"{vendor} has no account at that address: {exc.message}",
                          hint="Check --subdomain / --domain / --shop / --site.", code="wrong_account")
    if code == "invalid_params":
        return UsageError(exc.message)
    wait = f" (retry after {exc.retry_after:.0f}s)" if exc.retry_after else ""
    return Transient(f"could not reach {vendor}: {exc.message}{wait}", hint="Try again in a moment.",
                     code="upstream_unavailable")


async def validate(connector: Connector, config: Mapping[str, str], credential: Mapping[str, Secret]) -> str:
    """The vendor's "who am I" call with this credential; returns the account label."""
    from botctl.connectors.http import build_client

    async with build_client(connector, config, credential, base_url=config["base_url_resolved"]) as client:
        return await connector.validate(client, config)


def save(app: App, ws: Workspace, connector: Connector, *, auth: str, config: Mapping[str, str],
         credential: Mapping[str, Secret], account_label: str | None, scopes: tuple[str, ...] = (),
         expires_at: str | None = None, actor: dict | None = None) -> tuple[Connection, bool]:
    """Insert or replace the connection and its secrets in one transaction, audited. Returns (conn, replaced)."""
    vault = app.vault
    now = store.now_iso()
    with store.transaction(vault.conn):
        existing = find(vault.conn, ws, connector.name)
        cid = existing.id if existing else "conn_" + os.urandom(8).hex()
        if existing:
            vault.delete_secrets(ws.ref, cid)
            vault.conn.execute(
                "UPDATE connections SET auth = ?, status = 'active', status_reason = NULL, account_label = ?, "
                "config = ?, scopes = ?, updated_at = ?, expires_at = ? WHERE id = ?",
                (auth, account_label, json.dumps(dict(config)), json.dumps(list(scopes)), now, expires_at, cid))
        else:
            vault.conn.execute(
                f"INSERT INTO connections ({_COLUMNS}) VALUES (?, ?, ?, ?, 'active', NULL, ?, ?, ?, ?, ?, NULL, ?)",
                (cid, ws.id, connector.name, auth, account_label, json.dumps(dict(config)),
                 json.dumps(list(scopes)), now, now, expires_at))
        for field, value in credential.items():
            if field not in SECRET_FIELDS:
                raise ValueError(f"unknown credential field {field}")
            vault.put_secret(ws.ref, cid, field, value)
        app.audit("connection.replaced" if existing else "connection.created", workspace=ws.name,
                  connector=connector.name, actor=actor,
                  detail={"auth": auth, "account": account_label, "config": {k: v for k, v in config.items()
                                                                              if k != "base_url_resolved"},
                          "fields": sorted(credential)})
    return get(vault.conn, ws, connector.name), existing is not None


def set_status(app: App, connection: Connection, status: str, reason: str | None) -> None:
    if status not in STATUSES:
        raise ValueError(status)
    app.vault.conn.execute("UPDATE connections SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
                           (status, reason, store.now_iso(), connection.id))


def touch(app: App, connection: Connection) -> None:
    """Record use, at most once a minute per connection (a write per action would serialize the daemon)."""
    now = store.now_iso()
    if connection.last_used_at and connection.last_used_at[:16] == now[:16]:
        return
    app.vault.conn.execute("UPDATE connections SET last_used_at = ? WHERE id = ?", (now, connection.id))


def delete(app: App, ws: Workspace, connection: Connection, *, detail: dict[str, Any]) -> None:
    vault = app.vault
    with store.transaction(vault.conn):
        shredded = vault.delete_secrets(ws.ref, connection.id)
        vault.conn.execute("DELETE FROM connections WHERE id = ?", (connection.id,))
        app.audit("connection.deleted", workspace=ws.name, connector=connection.connector,
                  detail={**detail, "secrets_deleted": shredded})
    vault.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def describe_failure(exc: ActionError) -> dict[str, Any]:
    return {"code": exc.code, "upstream_status": exc.upstream_status}
