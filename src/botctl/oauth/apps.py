"""Bring-your-own OAuth apps: the client a self-hoster registered at each vendor.

One app per connector globally (the default), optionally overridden per workspace. A row holds the
client id and the non-secret overrides of the vendor defaults the connectors declare
(`clients.vendors()`: endpoints, redirect URI, token endpoint authentication, scopes); the client secret
is always encrypted:

* **workspace app**: a `secrets` row (the workspace's DEK; owner `oauth-app:<connector>`, field
  `client_secret`), so `workspace rotate-key` re-encrypts it and deleting the workspace shreds it.
* **global app**: the vault encrypts per workspace and a global app belongs to none. Its secret is
  AES-256-GCM (AAD `botctl/v1|_global|oauth-app:<connector>|client_secret`; `_global` cannot be a
  workspace name) under a dedicated random key, the *OAuth-apps key*, stored wrapped by the master
  key in `wrapped_keys` under the name `botctl/v1|oauth-apps` (AAD = that name), like the audit
  root. `vault rotate-master-key` re-wraps every `wrapped_keys` row in its one transaction, so no
  ciphertext is re-encrypted and nothing is derived from the KEK directly (a derivation would not
  survive a master-key rotation).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import NotFound, UsageError
from botctl.oauth.clients import (
    TOKEN_AUTH_METHODS,
    OAuthApp,
    check_endpoint,
    check_redirect_uri,
    effective_app,
    split_scopes,
    vendor,
    vendors,
)
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.connectors.base import Connector
    from botctl.session import Session
    from botctl.workspaces import Workspace

GLOBAL_KEY_NAME = "botctl/v1|oauth-apps"
GLOBAL_SCOPE = "_global"
SECRET_FIELD = "client_secret"
SETTINGS = (
    "authorize_url",
    "token_url",
    "revoke_url",
    "device_url",
    "metadata_url",
    "redirect_uri",
    "token_auth",
    "scopes",
)
CLIENT_ID_RE = re.compile(r"^[\x21-\x7e]{1,512}$")
_COLUMNS = (
    "a.workspace_id, w.name, a.connector, a.client_id, a.settings, "
    "a.client_secret IS NOT NULL OR EXISTS (SELECT 1 FROM secrets s WHERE s.workspace_id = a.workspace_id "
    "AND s.owner = 'oauth-app:' || a.connector), a.created_at, a.updated_at"
)


def owner(connector: str) -> str:
    return f"oauth-app:{connector}"


@dataclass(frozen=True)
class StoredApp:
    connector: str
    workspace: str | None  # None: the global default
    workspace_id: str | None
    client_id: str
    settings: dict[str, Any]
    has_secret: bool
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        """The effective app (vendor defaults + overrides), never the secret."""
        v = vendors().get(self.connector)
        s = self.settings

        def pick(name: str) -> Any:
            return s.get(name) or (getattr(v, name) if v is not None else None)

        return {
            "connector": self.connector,
            "scope": self.workspace or "global",
            "client_id": self.client_id,
            "client_secret": "set" if self.has_secret else "none",
            "token_auth": s.get("token_auth")
            or ((v.token_auth if v else None) if self.has_secret else "none"),
            "authorize_url": pick("authorize_url"),
            "token_url": pick("token_url"),
            "revoke_url": pick("revoke_url"),
            "device_url": pick("device_url"),
            "metadata_url": pick("metadata_url"),
            "redirect_uri": s.get("redirect_uri") or "http://127.0.0.1:<any port>/callback",
            "scopes": s.get("scopes"),
            "overrides": sorted(k for k in s if k != "scopes"),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _row(r: tuple) -> StoredApp:
    return StoredApp(r[2], r[1], r[0], r[3], json.loads(r[4]), bool(r[5]), r[6], r[7])


def list_all(conn: sqlite3.Connection) -> list[StoredApp]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM oauth_apps a LEFT JOIN workspaces w ON w.id = a.workspace_id "
        "ORDER BY a.connector, w.name IS NOT NULL, w.name"
    ).fetchall()
    return [_row(r) for r in rows]


def find(conn: sqlite3.Connection, connector: str, ws: Workspace | None) -> StoredApp | None:
    where, args = ("a.workspace_id = ?", (ws.id,)) if ws is not None else ("a.workspace_id IS NULL", ())
    r = conn.execute(
        f"SELECT {_COLUMNS} FROM oauth_apps a LEFT JOIN workspaces w ON w.id = a.workspace_id "
        f"WHERE a.connector = ? AND {where}",
        (connector, *args),
    ).fetchone()
    return _row(r) if r else None


def validate_settings(
    connector: Connector, settings: Mapping[str, Any], *, has_secret: bool
) -> dict[str, Any]:
    """Check and normalise the overrides given to `oauth-app set`."""
    vendor(connector.name)
    clean: dict[str, Any] = {}
    for name, what in (
        ("authorize_url", "--authorize-url"),
        ("token_url", "--token-url"),
        ("revoke_url", "--revoke-url"),
        ("device_url", "--device-url"),
        ("metadata_url", "--metadata-url"),
    ):
        value = settings.get(name)
        if value:
            clean[name] = check_endpoint(str(value).strip(), what, placeholders=connector.config_fields)
    if settings.get("redirect_uri"):
        clean["redirect_uri"] = check_redirect_uri(str(settings["redirect_uri"]).strip())
    method = settings.get("token_auth")
    if method:
        if method not in TOKEN_AUTH_METHODS:
            raise UsageError(f"--token-auth must be one of {', '.join(TOKEN_AUTH_METHODS)}, not {method!r}.")
        if method == "none" and has_secret:
            raise UsageError("--token-auth none is for public clients: give no client secret with it.")
        if method != "none" and not has_secret:
            raise UsageError(
                f"--token-auth {method} needs the client secret.",
                hint="Pass it with --client-secret-stdin or --client-secret-env VAR.",
            )
        clean["token_auth"] = method
    scopes = settings.get("scopes")
    if scopes:
        parsed = split_scopes(scopes)
        if not parsed or any(not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s) for s in parsed):
            raise UsageError(
                f"--scopes {scopes!r} is not a list of scope names.", hint='e.g. --scopes "read write"'
            )
        clean["scopes"] = list(parsed)
    return clean


def set_app(
    app: Session,
    connector: Connector,
    *,
    ws: Workspace | None,
    client_id: str,
    client_secret: Secret | None,
    settings: Mapping[str, Any],
) -> tuple[StoredApp, bool]:
    """Create or replace the app for `connector` (globally, or for `ws`), audited. Returns (app, replaced)."""
    client_id = client_id.strip()
    if not CLIENT_ID_RE.match(client_id):
        raise UsageError("--client-id must be 1-512 printable characters without spaces.")
    clean = validate_settings(connector, settings, has_secret=client_secret is not None)
    vault = app.vault
    now = store.now_iso()
    with store.transaction(vault.conn):
        existing = find(vault.conn, connector.name, ws)
        blob = None
        if ws is not None:
            vault.delete_secrets(ws.ref, owner(connector.name))
            if client_secret is not None:
                vault.put_secret(ws.ref, owner(connector.name), SECRET_FIELD, client_secret)
        elif client_secret is not None:
            from botctl import crypto

            blob = crypto.encrypt(
                _global_key(app, create=True), client_secret.reveal().encode(), _global_aad(connector.name)
            )
        if existing is not None:
            vault.conn.execute(
                "DELETE FROM oauth_apps WHERE connector = ? AND coalesce(workspace_id, '') = ?",
                (connector.name, ws.id if ws else ""),
            )
        vault.conn.execute(
            "INSERT INTO oauth_apps (workspace_id, connector, client_id, settings, client_secret, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                ws.id if ws else None,
                connector.name,
                client_id,
                json.dumps(clean, sort_keys=True),
                blob,
                existing.created_at if existing else now,
                now,
            ),
        )
        app.audit(
            "oauth_app.replaced" if existing else "oauth_app.created",
            workspace=ws.name if ws else None,
            connector=connector.name,
            detail={
                "scope": ws.name if ws else "global",
                "client_id": client_id,
                "client_secret": "set" if client_secret is not None else "none",
                "settings": clean,
            },
        )
    found = find(vault.conn, connector.name, ws)
    assert found is not None
    return found, existing is not None


def remove(app: Session, connector: str, ws: Workspace | None) -> StoredApp:
    vault = app.vault
    with store.transaction(vault.conn):
        existing = find(vault.conn, connector, ws)
        if existing is None:
            where = f"workspace {ws.name!r}" if ws else "globally"
            raise NotFound(
                f"no OAuth app for {connector} is set {where}.",
                hint="See `botctl oauth-app list`.",
                code="no_oauth_app",
            )
        if ws is not None:
            vault.delete_secrets(ws.ref, owner(connector))
        vault.conn.execute(
            "DELETE FROM oauth_apps WHERE connector = ? AND coalesce(workspace_id, '') = ?",
            (connector, ws.id if ws else ""),
        )
        app.audit(
            "oauth_app.removed",
            workspace=ws.name if ws else None,
            connector=connector,
            detail={"scope": ws.name if ws else "global", "client_id": existing.client_id},
        )
    vault.shred()
    return existing


def _global_aad(connector: str) -> bytes:
    from botctl import crypto

    return crypto.secret_aad(GLOBAL_SCOPE, owner(connector), SECRET_FIELD)


def _global_key(app: Session, *, create: bool) -> bytes:
    """The OAuth-apps key, unwrapped with the master key; made (inside the caller's transaction) on first use."""
    from botctl import crypto
    from botctl.errors import BotctlError

    vault = app.vault
    aad = GLOBAL_KEY_NAME.encode()  # the AAD `vault rotate-master-key` uses for non-audit wrapped keys
    row = vault.conn.execute("SELECT wrapped FROM wrapped_keys WHERE name = ?", (GLOBAL_KEY_NAME,)).fetchone()
    if row is not None:
        return crypto.unwrap_key(vault.master.key, row[0], aad)
    if not create:
        raise BotctlError(
            "the vault has no OAuth-apps key.",
            hint="Set the app again with `botctl oauth-app set`.",
            code="no_oauth_app_key",
        )
    key = crypto.new_key()
    vault.conn.execute(
        "INSERT INTO wrapped_keys (name, wrapped, created_at) VALUES (?, ?, ?)",
        (GLOBAL_KEY_NAME, crypto.wrap_key(vault.master.key, key, aad), store.now_iso()),
    )
    return key


def client_secret(app: Session, stored: StoredApp, ws: Workspace | None) -> Secret | None:
    if not stored.has_secret:
        return None
    if stored.workspace_id is not None:
        assert ws is not None and ws.id == stored.workspace_id
        return app.vault.get_secret(ws.ref, owner(stored.connector), SECRET_FIELD)
    from botctl import crypto

    row = app.vault.conn.execute(
        "SELECT client_secret FROM oauth_apps WHERE connector = ? AND workspace_id IS NULL",
        (stored.connector,),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return Secret(
        crypto.decrypt(_global_key(app, create=False), row[0], _global_aad(stored.connector)).decode()
    )


def lookup(app: Session, ws: Workspace, connector: str) -> tuple[StoredApp, Workspace | None] | None:
    """The workspace's app if it has one, else the global default."""
    own = find(app.vault.conn, connector, ws)
    if own is not None:
        return own, ws
    shared = find(app.vault.conn, connector, None)
    return (shared, None) if shared is not None else None


def resolve(app: Session, ws: Workspace, connector: Connector, config: Mapping[str, str]) -> OAuthApp | None:
    """The effective OAuth client for connecting `connector` in `ws` (tenant filled in), or None."""
    found = lookup(app, ws, connector.name)
    if found is None:
        return None
    stored, scope_ws = found
    return effective_app(
        connector,
        source="workspace" if scope_ws else "global",
        client_id=stored.client_id,
        client_secret=client_secret(app, stored, scope_ws),
        settings=stored.settings,
        config=config,
    )


def stored_secret_for(app: Session, ws: Workspace, connector: str, client_id: str) -> Secret | None:
    """The configured secret of the app with this client id, if it is still the one configured."""
    found = lookup(app, ws, connector)
    if found is None or found[0].client_id != client_id:
        return None
    return client_secret(app, found[0], found[1])
