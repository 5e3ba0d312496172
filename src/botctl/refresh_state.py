"""A connection's token state: who holds the refresh lease, the tokens a refresh saved, and the fall to
needs_reauth. The rotation-safe refresh protocol (botctl.oauth.refreshing) is the one caller; it lives
apart from connections.py, which keeps the connection rows and their settings."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botctl import store
from botctl.connections import Connection, by_id
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.session import Session
    from botctl.workspaces import Workspace


def has_refresh_token(app: Session, ws: Workspace, connection: Connection) -> bool:
    """Whether a refresh token is stored (no decryption)."""
    return "refresh_token" in app.vault.secret_fields(ws.ref, connection.id)


def lease_holder(app: Session, connection: Connection) -> tuple[str | None, float | None]:
    row = app.vault.conn.execute(
        "SELECT refresh_lease_owner, refresh_lease_until FROM connections WHERE id = ?", (connection.id,)
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


def acquire_refresh_lease(
    app: Session,
    connection: Connection,
    owner: str,
    *,
    ttl_s: float,
    now: float,
    stale_owner: str | None = None,
) -> bool:
    """Take the refresh lease if it is free, expired, or held by `stale_owner` (a process that died).

    One UPDATE, so two processes can never both get it (SQLite serialises writers)."""
    cur = app.vault.conn.execute(
        "UPDATE connections SET refresh_lease_owner = ?, refresh_lease_until = ? WHERE id = ? AND "
        "(refresh_lease_owner IS NULL OR refresh_lease_until < ? OR refresh_lease_owner = ? OR refresh_lease_owner = ?)",
        (owner, now + ttl_s, connection.id, now, owner, stale_owner or owner),
    )
    return cur.rowcount == 1


def release_refresh_lease(app: Session, connection: Connection, owner: str) -> None:
    app.vault.conn.execute(
        "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL "
        "WHERE id = ? AND refresh_lease_owner = ?",
        (connection.id, owner),
    )


def mark_refresh_sent(app: Session, connection: Connection, owner: str) -> bool:
    """Record, before the request leaves, that a refresh is about to be sent (False: lease lost)."""
    cur = app.vault.conn.execute(
        "UPDATE connections SET refresh_state = 'sent' WHERE id = ? AND refresh_lease_owner = ?",
        (connection.id, owner),
    )
    return cur.rowcount == 1


class Superseded(Exception):
    """The connection was replaced (reconnected) while a refresh was in flight."""


# The three writes below commit before their caller audits them (`botctl.oauth`): a rotated refresh
# token must never be rolled back because an audit append failed, and in the daemon the group
# committer checkpoints through its own vault connection, which a held write lock would block.


def record_refresh_failure(
    app: Session,
    connection: Connection,
    owner: str,
    *,
    sent: bool,
    outcome_unknown: bool,
    retry_at: float | None,
) -> None:
    """A refresh that produced no tokens: backoff, the unknown-outcome mark, the lease released.

    `sent` False (nothing reached the server) keeps the state the attempt found."""
    if outcome_unknown:
        state_sql, args = "'unknown'", ()
    elif sent:
        state_sql, args = "NULL", ()
    else:
        state_sql, args = "?", (connection.refresh_state,)
    app.vault.conn.execute(
        f"UPDATE connections SET refresh_state = {state_sql}, refresh_failures = refresh_failures + 1, "
        "refresh_retry_at = ?, refresh_lease_owner = NULL, refresh_lease_until = NULL "
        "WHERE id = ? AND (refresh_lease_owner IS NULL OR refresh_lease_owner = ?)",
        (*args, retry_at, connection.id, owner),
    )


def save_tokens(
    app: Session,
    ws: Workspace,
    connection: Connection,
    *,
    access_token: Secret,
    refresh_token: Secret | None,
    expires_at: str | None,
    scopes: tuple[str, ...],
) -> Connection:
    """Persist a refresh's result in ONE transaction (rotation-safe): the new access token, the new
    refresh token (if the server rotated it), expiry and scopes, a new generation, the lease released.
    Only after this commits may either token be used. If the connection was replaced meanwhile (a
    reconnect: its generation moved), the new grant is kept and this result is dropped."""
    vault = app.vault
    with store.transaction(vault.conn):
        row = vault.conn.execute(
            "SELECT token_generation FROM connections WHERE id = ?", (connection.id,)
        ).fetchone()
        if row is None or row[0] != connection.token_generation:
            raise Superseded(connection.id)
        vault.put_secret(ws.ref, connection.id, "access_token", access_token)
        if refresh_token is not None:
            vault.put_secret(ws.ref, connection.id, "refresh_token", refresh_token)
        now = store.now_iso()
        vault.conn.execute(
            "UPDATE connections SET expires_at = ?, scopes = ?, token_generation = token_generation + 1, "
            "refreshed_at = ?, updated_at = ?, refresh_state = NULL, refresh_failures = 0, refresh_retry_at = NULL, "
            "refresh_lease_owner = NULL, refresh_lease_until = NULL, status = 'active', status_reason = NULL "
            "WHERE id = ?",
            (expires_at, json.dumps(list(scopes)), now, now, connection.id),
        )
    found = by_id(vault.conn, ws, connection.id)
    assert found is not None
    return found


def mark_needs_reauth(app: Session, ws: Workspace, connection: Connection, reason: str) -> Connection:
    """The server refused the grant for good: stop refreshing until the operator reconnects."""
    vault = app.vault
    vault.conn.execute(
        "UPDATE connections SET status = 'needs_reauth', status_reason = ?, updated_at = ?, refresh_state = NULL, "
        "refresh_lease_owner = NULL, refresh_lease_until = NULL WHERE id = ?",
        (reason, store.now_iso(), connection.id),
    )
    found = by_id(vault.conn, ws, connection.id)
    assert found is not None
    return found
