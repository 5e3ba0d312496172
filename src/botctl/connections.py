"""Connections: one per (workspace, connector), credentials always encrypted in the vault.

The credential fields (`api_key`, `api_secret`, `access_token`, `refresh_token`) are stored as
secrets owned by the connection id; the row itself holds only what may be shown: status, account
label, non-secret config (tenant, base URL), scopes, timestamps.

OAuth connections also keep (schema 5): the OAuth app they were made with (`oauth_*` config keys,
its client secret as the `client_secret` secret, used only when that app is no longer configured),
the access token's expiry, a token generation that every save of new tokens increments, and the
refresh bookkeeping `botctl.oauth` uses: `refresh_state` (`sent` while a refresh request is out,
`unknown` when its outcome was never learned), failures and the backoff deadline, and a lease
(owner, until) that makes refreshes single-flight across processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import BotctlError, CredentialRejected, NotFound, Transient, UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.connectors.base import ActionError, Connector
    from botctl.connectors.urls import ConfigError, Word
    from botctl.session import Session
    from botctl.workspaces import Workspace

STATUSES = ("active", "needs_reauth", "error")
SECRET_FIELDS = ("api_key", "api_secret", "access_token", "refresh_token")
# The OAuth app's client secret as it was at connect time; never handed to the vendor API client.
CLIENT_SECRET_FIELD = "client_secret"
_BASE_COLUMNS = (
    "id, workspace_id, connector, auth, status, status_reason, account_label, config, scopes, "
    "created_at, updated_at, last_used_at, expires_at"
)
_COLUMNS = (
    _BASE_COLUMNS + ", token_generation, refreshed_at, refresh_state, refresh_failures, refresh_retry_at"
)
OAUTH_PREFIX = "oauth_"


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
    token_generation: int = 0
    refreshed_at: str | None = None
    refresh_state: str | None = None
    refresh_failures: int = 0
    refresh_retry_at: float | None = None

    @property
    def base_url(self) -> str | None:
        return self.config.get("base_url_resolved")

    def public_config(self) -> dict[str, str]:
        return {
            k: v
            for k, v in self.config.items()
            if k != "base_url_resolved" and not k.startswith(OAUTH_PREFIX)
        }

    def oauth_config(self) -> dict[str, str]:
        """The OAuth app this connection was made with: client id, token/revoke URLs, auth method."""
        return {k[len(OAUTH_PREFIX) :]: v for k, v in self.config.items() if k.startswith(OAUTH_PREFIX)}

    def expires_at_epoch(self) -> float | None:
        return iso_to_epoch(self.expires_at)

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
            "oauth": self.oauth_config() or None,
            "refreshed_at": self.refreshed_at,
            "refresh_state": self.refresh_state,
            "refresh_failures": self.refresh_failures,
        }

    def reconnect_command(self) -> str:
        """The exact command that re-authorises this connection (tenant and sandbox included)."""
        from botctl.connectors import registry

        parts = ["botctl", "connect", self.connector, "-w", self.workspace]
        connector = registry.get(self.connector)
        for field in connector.config if connector else ():
            value = self.config.get(field.name)
            if value:
                parts += [field.alias, value] if field.alias else ["--config", f"{field.name}={value}"]
        if self.config.get("sandbox"):
            parts += ["--sandbox", self.config["sandbox"]]
        return " ".join(parts)


def iso_to_epoch(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def epoch_to_iso(value: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _row(r: tuple, workspace: str) -> Connection:
    return Connection(
        r[0],
        r[1],
        workspace,
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        json.loads(r[7]),
        tuple(json.loads(r[8])),
        r[9],
        r[10],
        r[11],
        r[12],
        r[13],
        r[14],
        r[15],
        r[16],
        r[17],
    )


def list_all(conn: sqlite3.Connection, workspace: Workspace | None = None) -> list[Connection]:
    sql = (
        f"SELECT {', '.join('c.' + c.strip() for c in _COLUMNS.split(','))}, w.name FROM connections c "
        "JOIN workspaces w ON w.id = c.workspace_id"
    )
    args: tuple = ()
    if workspace is not None:
        sql += " WHERE c.workspace_id = ?"
        args = (workspace.id,)
    rows = conn.execute(sql + " ORDER BY w.name, c.connector", args).fetchall()
    return [_row(r[:-1], r[-1]) for r in rows]


def find(conn: sqlite3.Connection, ws: Workspace, connector: str) -> Connection | None:
    r = conn.execute(
        f"SELECT {_COLUMNS} FROM connections WHERE workspace_id = ? AND connector = ?", (ws.id, connector)
    ).fetchone()
    return _row(r, ws.name) if r else None


def by_id(conn: sqlite3.Connection, ws: Workspace, connection_id: str) -> Connection | None:
    r = conn.execute(
        f"SELECT {_COLUMNS} FROM connections WHERE id = ? AND workspace_id = ?", (connection_id, ws.id)
    ).fetchone()
    return _row(r, ws.name) if r else None


def get(conn: sqlite3.Connection, ws: Workspace, connector: str) -> Connection:
    c = find(conn, ws, connector)
    if c is None:
        raise NotFound(
            f"{connector} is not connected in workspace {ws.name!r}.",
            hint=f"Connect it with: botctl connect {connector} -w {ws.name}",
            code="not_connected",
        )
    return c


def credential(app: Session, ws: Workspace, connection: Connection) -> dict[str, Secret]:
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
        from botctl.suggest import hint

        names = [x.name for x in registry.all_connectors()]
        raise NotFound(
            f"unknown connector {name!r}.",
            hint=hint(name, names, f"Known connectors: {', '.join(names)}."),
            code="unknown_connector",
        )
    return c


class SettingsError(UsageError):
    """A usage error about a connector's settings. Its message names them neutrally ("the subdomain
    setting"); `worded(word, listed)` words it again for a front end that names settings its own way
    (the CLI: `--subdomain`): `word` for a setting in a sentence, `listed` for one in a list."""

    def __init__(
        self,
        compose: Callable[[Word], str],
        *,
        hint: Callable[[Word], str] | None = None,
        fields: Sequence[str] = (),
        code: str | None = None,
    ) -> None:
        from botctl.connectors.urls import setting_word

        self._compose, self._hint, self.fields = compose, hint, tuple(fields)
        message, hint_text = self.worded(setting_word, lambda name: name)
        super().__init__(message, hint=hint_text, code=code)

    @classmethod
    def of(cls, exc: ConfigError) -> SettingsError:
        return cls(lambda w: exc.worded(w, w)[0], hint=lambda w: exc.worded(w, w)[1] or "", fields=exc.fields)

    def worded(self, word: Word, listed: Word) -> tuple[str, str | None]:
        return self._compose(word), (self._hint(listed) or None if self._hint else None)


def resolve_config(
    connector: Connector, config: Mapping[str, str | None], sandbox: str | None
) -> dict[str, str]:
    """Normalised config plus the resolved base URL (sandbox or the vendor's). A setting the connector
    does not take, a missing or malformed one: SettingsError."""
    from botctl.connectors import urls
    from botctl.connectors.base import ActionError

    given = {k: v for k, v in config.items() if v}
    try:
        urls.check_given(connector, given)
        clean = urls.normalize_config(connector, given)
        if sandbox:
            sandbox = sandbox.rstrip("/")
            if not sandbox.startswith(("http://", "https://")):
                raise UsageError(
                    f"--sandbox {sandbox!r} is not a URL.", hint="Use e.g. --sandbox http://127.0.0.1:8790"
                )
            resolved = urls.sandbox_url_for(connector, clean, sandbox)
            clean["sandbox"] = sandbox
        else:
            resolved = urls.base_url_for(connector, clean)
    except urls.ConfigError as exc:
        raise SettingsError.of(exc) from None
    except ActionError as exc:
        raise UsageError(exc.message) from None
    clean["base_url_resolved"] = resolved
    return clean


def error_for(exc: ActionError, vendor: str, *, given: bool = False) -> BotctlError:
    """Map a vendor-call failure at connect/test time to a CLI error with a documented exit code.

    `given`: the credential was just given (connect, apply), not the stored one (connections test), so a
    refusal is worded as "this credential" with what to check, not as a stored one to reconnect."""
    code = exc.code
    if code in ("needs_reauth", "forbidden", "missing_scope"):
        status = f" (HTTP {exc.upstream_status})" if exc.upstream_status else ""
        if given and code == "missing_scope":
            return CredentialRejected(
                f"{vendor} knows the credential you gave, but it lacks a permission botctl needs{status}.",
                hint="Give it the scopes `botctl connectors show` lists for this tool, then connect again.",
            )
        if given:
            return CredentialRejected(
                f"{vendor} rejected the credential you gave{status}.",
                hint=f"Check that it is the whole {vendor} key or token, for the right account, "
                "and not revoked, then connect again.",
            )
        message = (
            exc.message
            if exc.message.startswith(vendor)
            else f"{vendor} rejected the credential: {exc.message}"
        )
        return CredentialRejected(message, hint="Check the key (and its permissions), then connect again.")
    if code == "not_found":
        from botctl.connectors import registry

        fields = next((c.config_fields for c in registry.all_connectors() if c.vendor == vendor), ())
        message = f"{vendor} has no account at that address: {exc.message}"
        return SettingsError(
            lambda w: message,
            hint=lambda w: f"Check the settings: {', '.join(w(f) for f in fields)}." if fields else "",
            fields=fields,
            code="wrong_account",
        )
    if code == "invalid_params":
        return UsageError(exc.message)
    wait = f" (retry after {exc.retry_after:.0f}s)" if exc.retry_after else ""
    where = getattr(exc, "where", None)
    if where:
        return Transient(
            f"could not reach {vendor} at {where}.",
            hint="Check the address (--sandbox URL, or the connection's settings) and that it answers, "
            "then try again.",
            code="upstream_unavailable",
        )
    return Transient(
        f"could not reach {vendor}: {exc.message}{wait}",
        hint="Try again in a moment.",
        code="upstream_unavailable",
    )


async def validate(connector: Connector, config: Mapping[str, str], credential: Mapping[str, Secret]) -> str:
    """The vendor's "who am I" call with this credential; returns the account label."""
    from botctl.connectors.http import build_client

    async with build_client(connector, config, credential, base_url=config["base_url_resolved"]) as client:
        return await connector.validate(client, config)


def save(
    app: Session,
    ws: Workspace,
    connector: Connector,
    *,
    auth: str,
    config: Mapping[str, str],
    credential: Mapping[str, Secret],
    account_label: str | None,
    scopes: tuple[str, ...] = (),
    expires_at: str | None = None,
    actor: dict | None = None,
    extra_detail: Mapping[str, Any] | None = None,
) -> tuple[Connection, bool]:
    """Insert or replace the connection and its secrets in one transaction, audited. Returns (conn, replaced)."""
    vault = app.vault
    now = store.now_iso()
    with store.transaction(vault.conn):
        existing = find(vault.conn, ws, connector.name)
        cid = existing.id if existing else "conn_" + os.urandom(8).hex()
        if existing:
            vault.delete_secrets(ws.ref, cid)
            # New credential: the refresh bookkeeping of the old one no longer applies.
            vault.conn.execute(
                "UPDATE connections SET auth = ?, status = 'active', status_reason = NULL, account_label = ?, "
                "config = ?, scopes = ?, updated_at = ?, expires_at = ?, token_generation = token_generation + 1, "
                "refreshed_at = NULL, refresh_state = NULL, refresh_failures = 0, refresh_retry_at = NULL, "
                "refresh_lease_owner = NULL, refresh_lease_until = NULL WHERE id = ?",
                (
                    auth,
                    account_label,
                    json.dumps(dict(config)),
                    json.dumps(list(scopes)),
                    now,
                    expires_at,
                    cid,
                ),
            )
        else:
            vault.conn.execute(
                f"INSERT INTO connections ({_BASE_COLUMNS}) VALUES (?, ?, ?, ?, 'active', NULL, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    cid,
                    ws.id,
                    connector.name,
                    auth,
                    account_label,
                    json.dumps(dict(config)),
                    json.dumps(list(scopes)),
                    now,
                    now,
                    expires_at,
                ),
            )
        for field, value in credential.items():
            if field not in SECRET_FIELDS and field != CLIENT_SECRET_FIELD:
                raise ValueError(f"unknown credential field {field}")
            vault.put_secret(ws.ref, cid, field, value)
        app.audit(
            "connection.replaced" if existing else "connection.created",
            workspace=ws.name,
            connector=connector.name,
            actor=actor,
            detail={
                "auth": auth,
                "account": account_label,
                "config": {k: v for k, v in config.items() if k != "base_url_resolved"},
                "fields": sorted(credential),
                **(extra_detail or {}),
            },
        )
    return get(vault.conn, ws, connector.name), existing is not None


def connect_with_secret(
    app: Session,
    ws: Workspace,
    connector: Connector,
    config: Mapping[str, str],
    credential: Mapping[str, Secret],
    *,
    check: bool = True,
) -> tuple[Connection, bool]:
    """Connect with an API key (and secret) or a vendor-issued access token: the vendor's "who am I" call
    through the same client the actions use, then the row and its encrypted credential in one audited
    transaction. A refusal is audited as `connection.failed` and raised as a BotctlError (nothing stored).
    `config` comes from `resolve_config`. Returns (connection, whether it replaced one)."""
    import asyncio

    from botctl.connectors.base import ActionError
    from botctl.errors import EXIT_TRANSIENT

    label = None
    if check:
        try:
            label = asyncio.run(validate(connector, config, credential))
        except ActionError as exc:
            err = error_for(exc, connector.vendor, given=True)
            app.audit(
                "connection.failed",
                workspace=ws.name,
                connector=connector.name,
                outcome="denied" if err.exit_code != EXIT_TRANSIENT else "error",
                reason=err.code,
                detail={"upstream_status": exc.upstream_status, "message": exc.message},
            )
            raise err from None
    return save(
        app, ws, connector, auth=connector.auth, config=config, credential=credential, account_label=label
    )


def set_status(app: Session, connection: Connection, status: str, reason: str | None) -> None:
    if status not in STATUSES:
        raise ValueError(status)
    app.vault.conn.execute(
        "UPDATE connections SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
        (status, reason, store.now_iso(), connection.id),
    )


def touch(app: Session, connection: Connection) -> None:
    """Record use, at most once a minute per connection (a write per action would serialize the daemon)."""
    now = store.now_iso()
    if connection.last_used_at and connection.last_used_at[:16] == now[:16]:
        return
    app.vault.conn.execute("UPDATE connections SET last_used_at = ? WHERE id = ?", (now, connection.id))


def delete(app: Session, ws: Workspace, connection: Connection, *, detail: dict[str, Any]) -> None:
    vault = app.vault
    with store.transaction(vault.conn):
        shredded = vault.delete_secrets(ws.ref, connection.id)
        vault.conn.execute("DELETE FROM connections WHERE id = ?", (connection.id,))
        app.audit(
            "connection.deleted",
            workspace=ws.name,
            connector=connection.connector,
            detail={**detail, "secrets_deleted": shredded},
        )
    vault.shred()


def describe_failure(exc: ActionError) -> dict[str, Any]:
    return {"code": exc.code, "upstream_status": exc.upstream_status}


# -- OAuth token state (schema 5) -----------------------------------------------------------------
