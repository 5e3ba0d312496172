"""Refresh: a margin before expiry, and on a vendor 401.

Single-flight within a process (one asyncio task per connection, every other caller awaits it) and
across processes and nodes (a lease on the connection row, re-read after it is acquired: one conditional
UPDATE, which SQLite serialises and PostgreSQL makes atomic by its row lock, re-checking the condition
after a concurrent UPDATE commits, so of any number of processes on any number of nodes exactly one gets
it). A lease whose holder is dead is taken over: a process of this node that no longer exists at once,
another node's once that node's heartbeat has lapsed (botctl/nodes.py), anyone's once it expires
(LEASE_TTL_S). Rotation-safe: the
new refresh token is committed in the same transaction as the new access token before either is
returned. A refresh whose outcome is unknown (crash, timeout or 5xx after sending) is recorded as
such; the next attempt sends the stored token once and, on `invalid_grant`, marks the connection
`needs_reauth` rather than trying again. Transient failures back off with jitter; the connection
stays `active` while its token is valid.
"""

from __future__ import annotations

import contextvars
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError, NeedsReauth, NotFound, Transient
from botctl.oauth.clients import OAuthApp
from botctl.oauth.protocol import (
    EndpointError,
    ServerError,
    exchange_error,
    revoke_quietly,
    token_request,
    token_set,
)

if TYPE_CHECKING:
    import asyncio

    from botctl.connections import Connection
    from botctl.session import Session
    from botctl.workspaces import Workspace

DEFAULT_MARGIN_S = 300.0  # refresh when the access token has less than this left
LEASE_TTL_S = 90.0  # > the token request's own timeout, so a live holder never loses its lease
LEASE_POLL_S = 0.05
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0


_inflight: dict[tuple[str, str], asyncio.Task[Connection]] = {}
# The visitor's request that made an action refresh (`fresh_for_action`, `refresh_after_401`): its id goes
# on the refresh's audit records, so `botctl audit --request-id` shows why that request needed one. The
# refresh task copies the context it was started in; callers that join it record under their own ids.
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("refresh_request_id", default=None)
# Token requests this process made to refresh, by (connector, "ok" | "failed"): every refresh goes
# through `_do_refresh`, whoever asked (the daemon's loop, an action before or after a 401, the CLI), so
# failures are counted where they happen. The provider reports them as botctl_oauth_refreshes_total.
_attempts: dict[tuple[str, str], int] = {}


def refresh_attempts() -> dict[tuple[str, str], int]:
    """A copy of this process's refresh counts: {(connector, "ok" | "failed"): n}."""
    return dict(_attempts)


def _count(connector: str, result: str) -> None:
    _attempts[(connector, result)] = _attempts.get((connector, result), 0) + 1


def _host() -> str:
    import socket

    return socket.gethostname().replace(":", "_")


def _new_owner(app: Session | None = None) -> str:
    """`where:pid:nonce`: `where` is the node's name on a PostgreSQL home (botctl/nodes.py), else the host."""
    node = app.node if app is not None else None
    return f"{node or _host()}:{os.getpid()}:{secrets.token_hex(4)}"


def _owner_dead(owner: str | None, app: Session | None = None) -> bool:
    """A lease held by a process of this machine (node) that no longer exists (crashed or killed
    mid-refresh), or by another node whose heartbeat has lapsed (botctl/nodes.py): that node is dead."""
    if not owner:
        return False
    try:
        host, pid, _ = owner.rsplit(":", 2)
        pid_n = int(pid)
    except ValueError:
        return False
    node = app.node if app is not None else None
    if node is not None and host != node:
        return _node_lapsed(app, host)
    if host != (node or _host()) or pid_n == os.getpid():
        return False
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def _node_lapsed(app: Session, name: str) -> bool:
    from botctl import nodes, store

    if store.schema_version(app.vault.conn) < 11:
        return False
    return name in nodes.lapsed(app.vault.conn)


def _due(c: Connection, margin_s: float, now: float) -> bool:
    exp = c.expires_at_epoch()
    return exp is not None and exp - now <= margin_s


def still_valid(c: Connection, now: float) -> bool:
    exp = c.expires_at_epoch()
    return exp is None or exp > now


def _backoff(failures: int, retry_after: float | None = None) -> float:
    import random

    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def _vendor_name(name: str) -> str:
    from botctl.connectors import registry

    c = registry.get(name)
    return c.vendor if c else name


def _needs_reauth_error(c: Connection) -> NeedsReauth:
    return NeedsReauth(
        f"{c.connector} in {c.workspace} needs re-authorisation ({c.status_reason or 'no reason'}).",
        hint=f"Reconnect: {c.reconnect_command()}",
    )


def stored_app(app: Session, ws: Workspace, c: Connection) -> OAuthApp:
    """The client to refresh/revoke with: the one the connection was made with. Its secret comes from
    the configured app when that is still the same client (so a rotated secret applies), else from
    the copy stored with the connection."""
    from botctl import connections
    from botctl.oauth.apps import stored_secret_for

    cfg = c.oauth_config()
    if not cfg.get("client_id") or not cfg.get("token_url"):
        raise NeedsReauth(
            f"{c.connector} in {c.workspace} was connected with a static token and cannot be refreshed.",
            hint=f"Connect it with OAuth: {c.reconnect_command()}",
            code="no_refresh_token",
        )
    secret = None
    if cfg.get("app") in ("workspace", "global"):
        secret = stored_secret_for(app, ws, c.connector, cfg["client_id"])
    if secret is None:
        secret = app.vault.get_secret(ws.ref, c.id, connections.CLIENT_SECRET_FIELD)
    method = cfg.get("token_auth") or ("client_secret_post" if secret else "none")
    return OAuthApp(
        connector=c.connector,
        source=cfg.get("app", "global"),
        client_id=cfg["client_id"],
        client_secret=secret,
        authorize_url="",
        token_url=cfg["token_url"],
        revoke_url=cfg.get("revoke_url"),
        device_url=None,
        metadata_url=None,
        redirect_uri=None,
        token_auth=method,
        revoke_auth=cfg.get("revoke_auth") or method,
        scopes=c.scopes,
        pkce=False,
    )


async def refresh(
    app: Session,
    ws: Workspace,
    connection: Connection,
    *,
    force: bool = False,
    margin_s: float = DEFAULT_MARGIN_S,
) -> Connection:
    """Refresh `connection`'s access token (if due, or always with `force`); returns the stored row.

    Single-flight: concurrent callers in this process share one attempt; other processes wait for
    the lease and then find the new token. Raises NeedsReauth (invalid_grant: the connection is now
    `needs_reauth`), CredentialRejected (the client was refused), Transient (try later; the
    connection stays active).
    """
    import asyncio
    import functools

    key = (str(app.home.path), connection.id)
    loop = asyncio.get_running_loop()
    while True:
        task = _inflight.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(
                _refresh_once(app, ws, connection.id, connection.token_generation, force, margin_s)
            )
            _inflight[key] = task
            task.add_done_callback(functools.partial(_forget, key))
            return await asyncio.shield(task)
        result = await asyncio.shield(task)
        if not force or result.token_generation != connection.token_generation:
            return result
        # A forced refresh joined an unforced attempt that found nothing due: go again, forced.


def _forget(key: tuple[str, str], task: asyncio.Task[Connection]) -> None:
    if _inflight.get(key) is task:
        del _inflight[key]
    if not task.cancelled():
        task.exception()  # retrieved: joined callers re-raise it; nobody needs asyncio's warning


async def _refresh_once(
    app: Session, ws: Workspace, connection_id: str, seen_generation: int, force: bool, margin_s: float
) -> Connection:
    import asyncio

    from botctl import connections, refresh_state

    owner = _new_owner(app)
    started = time.monotonic()

    def read() -> Connection:
        c = connections.by_id(app.vault.conn, ws, connection_id)
        if c is None:
            raise NotFound(f"the connection {connection_id} no longer exists.", code="not_connected")
        return c

    def settled(c: Connection) -> Connection | None:
        """The row if there is nothing (more) to do; None if this caller must refresh."""
        now = time.time()
        if c.status == "needs_reauth":
            raise _needs_reauth_error(c)
        if force:
            return c if c.token_generation != seen_generation else None
        if not _due(c, margin_s, now):
            return c
        if c.refresh_retry_at is not None and c.refresh_retry_at > now:
            if still_valid(c, now):
                return c  # backing off; the current token still works
            wait = c.refresh_retry_at - now
            raise Transient(
                f"refreshing the {_vendor_name(c.connector)} token failed recently; next attempt in "
                f"{wait:.0f} s.",
                hint=f"Force one now: botctl connections refresh {c.connector} -w {c.workspace}",
                code="upstream_unavailable",
            )
        return None

    while True:
        c = read()
        done = settled(c)
        if done is not None:
            return done
        holder, _ = refresh_state.lease_holder(app, c)
        stale = holder if _owner_dead(holder, app) else None
        if refresh_state.acquire_refresh_lease(
            app, c, owner, ttl_s=LEASE_TTL_S, now=time.time(), stale_owner=stale
        ):
            try:
                c = read()  # re-read under the lease: another process may have just refreshed
                done = settled(c)
                if done is not None:
                    return done
                return await _do_refresh(app, ws, c, owner)
            finally:
                refresh_state.release_refresh_lease(app, c, owner)
        if time.monotonic() - started > LEASE_TTL_S + 5:
            raise Transient(
                f"another botctl process has been refreshing {c.connector} in {c.workspace} for too long.",
                hint="Try again in a minute.",
                code="upstream_unavailable",
            )
        await asyncio.sleep(LEASE_POLL_S)


async def _do_refresh(app: Session, ws: Workspace, c: Connection, owner: str) -> Connection:
    from botctl import connections, refresh_state

    vendor_name = _vendor_name(c.connector)
    refresh_token = app.vault.get_secret(ws.ref, c.id, "refresh_token")
    if refresh_token is None:
        raise NeedsReauth(
            f"{c.connector} in {c.workspace} has no refresh token.",
            hint=f"Reconnect to get a new access token: {c.reconnect_command()}",
            code="no_refresh_token",
        )
    app_cfg = stored_app(app, ws, c)
    previous_unknown = c.refresh_state in ("sent", "unknown")
    detail: dict[str, Any] = {"previous_outcome": "unknown"} if previous_unknown else {}
    if not refresh_state.mark_refresh_sent(app, c, owner):
        raise Transient(
            "lost the refresh lease to another process.", hint="Try again.", code="upstream_unavailable"
        )
    try:
        body = await token_request(
            app_cfg, {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()}
        )
        tokens = token_set(body)
    except ServerError as exc:
        _count(c.connector, "failed")
        said = f": {exc.description}" if exc.description else ""
        if exc.error == "invalid_grant":
            reason = f"{vendor_name} refused the refresh token (invalid_grant{said})"
            if previous_unknown:
                # The earlier attempt probably rotated the token and its answer was lost: the grant
                # cannot be recovered, and retrying would only loop.
                reason += "; an earlier refresh's outcome was unknown"
            refresh_state.mark_needs_reauth(app, ws, c, reason)
            await app.aaudit(
                "connection.refresh_failed",
                workspace=ws.name,
                connector=c.connector,
                request_id=_request_id.get(),
                outcome="error",
                reason="needs_reauth",
                detail={
                    **detail,
                    "error": exc.error,
                    "error_description": exc.description,
                    "upstream_status": exc.status,
                    "connection_status": "needs_reauth",
                },
            )
            raise NeedsReauth(reason + ".", hint=f"Reconnect: {c.reconnect_command()}") from None
        refresh_state.record_refresh_failure(
            app,
            c,
            owner,
            sent=True,
            outcome_unknown=False,
            retry_at=time.time() + _backoff(c.refresh_failures + 1),
        )
        await app.aaudit(
            "connection.refresh_failed",
            workspace=ws.name,
            connector=c.connector,
            request_id=_request_id.get(),
            outcome="error",
            reason=exc.error,
            detail={
                **detail,
                "error": exc.error,
                "error_description": exc.description,
                "upstream_status": exc.status,
            },
        )
        raise exchange_error(exc, vendor_name, f"refreshing the {vendor_name} token failed") from None
    except EndpointError as exc:
        _count(c.connector, "failed")
        unknown = exc.unknown or (previous_unknown and not exc.sent)
        refresh_state.record_refresh_failure(
            app,
            c,
            owner,
            sent=exc.sent,
            outcome_unknown=unknown,
            retry_at=time.time() + _backoff(c.refresh_failures + 1, exc.retry_after),
        )
        await app.aaudit(
            "connection.refresh_failed",
            workspace=ws.name,
            connector=c.connector,
            request_id=_request_id.get(),
            outcome="error",
            reason="refresh_outcome_unknown" if exc.unknown else "upstream_unavailable",
            detail={
                **detail,
                "message": exc.message,
                "upstream_status": exc.status,
                "outcome_unknown": unknown,
            },
        )
        more = (
            " Its outcome is unknown: the next attempt sends the stored refresh token once more."
            if exc.unknown
            else ""
        )
        raise Transient(
            f"refreshing the {vendor_name} token failed: {exc.message}.{more}",
            hint="It is retried with backoff; the connection stays usable while its token is valid.",
            code="refresh_outcome_unknown" if exc.unknown else "upstream_unavailable",
        ) from None
    _count(c.connector, "ok")
    rotated = tokens.refresh_token is not None and tokens.refresh_token != refresh_token
    expires_at = (
        connections.epoch_to_iso(time.time() + tokens.expires_in) if tokens.expires_in is not None else None
    )
    try:
        saved = refresh_state.save_tokens(
            app,
            ws,
            c,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token if rotated else None,
            expires_at=expires_at,
            scopes=tokens.scopes if tokens.scopes is not None else c.scopes,
        )
    except refresh_state.Superseded:
        # Reconnected while this refresh was out: the new grant wins; this one is revoked if possible.
        await revoke_quietly(app_cfg, tokens)
        found = connections.by_id(app.vault.conn, ws, c.id)
        if found is None:
            raise NotFound(
                f"{c.connector} in {c.workspace} was disconnected meanwhile.", code="not_connected"
            ) from None
        return found
    await app.aaudit(
        "connection.refreshed",
        workspace=ws.name,
        connector=c.connector,
        request_id=_request_id.get(),
        detail={
            **detail,
            "expires_in": tokens.expires_in,
            "rotated": rotated,
            "generation": saved.token_generation,
        },
    )
    return saved


async def ensure_fresh(
    app: Session, ws: Workspace, connection: Connection, *, margin_s: float = DEFAULT_MARGIN_S
) -> Connection:
    """`connection`, refreshed first if its token expires within `margin_s` and it can be refreshed.

    A transient failure is swallowed while the current token is still valid (the connection stays
    usable); past expiry it raises Transient."""
    from botctl import connections, refresh_state

    if connection.auth != "oauth" or not _due(connection, margin_s, time.time()):
        return connection
    if not refresh_state.has_refresh_token(app, ws, connection):
        return connection
    try:
        return await refresh(app, ws, connection, margin_s=margin_s)
    except Transient:
        current = connections.by_id(app.vault.conn, ws, connection.id) or connection
        if still_valid(current, time.time()):
            return current
        raise


@dataclass(frozen=True)
class RefreshOutcome:
    workspace: str
    connector: str
    outcome: str  # refreshed | not_due | needs_reauth | failed
    code: str | None = None
    message: str | None = None
    expires_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "connector": self.connector,
            "outcome": self.outcome,
            "code": self.code,
            "message": self.message,
            "expires_at": self.expires_at,
        }


async def refresh_due(app: Session, *, margin_s: float = DEFAULT_MARGIN_S) -> list[RefreshOutcome]:
    """Refresh every active OAuth connection whose token expires within `margin_s` (the provider's loop)."""
    import asyncio

    from botctl import connections, refresh_state, workspaces

    now = time.time()
    due = [
        c
        for c in connections.list_all(app.vault.conn)
        if c.auth == "oauth"
        and c.status == "active"
        and c.oauth_config().get("token_url")
        and _due(c, margin_s, now)
        and not (c.refresh_retry_at and c.refresh_retry_at > now)
    ]

    async def one(c: Connection) -> RefreshOutcome:
        ws = workspaces.get(app.vault.conn, c.workspace)
        if not refresh_state.has_refresh_token(app, ws, c):
            return RefreshOutcome(c.workspace, c.connector, "not_due", "no_refresh_token")
        try:
            new = await refresh(app, ws, c, margin_s=margin_s)
        except NeedsReauth as exc:
            return RefreshOutcome(c.workspace, c.connector, "needs_reauth", exc.code, exc.message)
        except BotctlError as exc:
            return RefreshOutcome(c.workspace, c.connector, "failed", exc.code, exc.message)
        changed = new.token_generation != c.token_generation
        return RefreshOutcome(
            c.workspace, c.connector, "refreshed" if changed else "not_due", expires_at=new.expires_at
        )

    return list(await asyncio.gather(*(one(c) for c in due)))


# The action engine's two entry points: the same refresh, its failures as ActionErrors.


def _action_error(exc: BotctlError, vendor_name: str) -> Exception:
    from botctl.connectors.base import ActionError

    if isinstance(exc, NeedsReauth):
        return ActionError(
            "needs_reauth", "This tool's connection needs to be re-authorised by the workspace operator."
        )
    return ActionError("upstream_error", f"Could not refresh the {vendor_name} credential; try again later.")


async def fresh_for_action(
    app: Session, ws: Workspace, connection: Connection, *, request_id: str | None = None
) -> Connection:
    token = _request_id.set(request_id)
    try:
        return await ensure_fresh(app, ws, connection)
    except BotctlError as exc:
        raise _action_error(exc, _vendor_name(connection.connector)) from None
    finally:
        _request_id.reset(token)


async def refresh_after_401(
    app: Session, ws: Workspace, connection: Connection, *, request_id: str | None = None
) -> Connection:
    """The vendor refused the token: refresh once (joined with any refresh already under way)."""
    token = _request_id.set(request_id)
    try:
        return await refresh(app, ws, connection, force=True)
    except BotctlError as exc:
        raise _action_error(exc, _vendor_name(connection.connector)) from None
    finally:
        _request_id.reset(token)


def can_refresh(app: Session, ws: Workspace, connection: Connection) -> bool:
    from botctl import refresh_state

    return (
        connection.auth == "oauth"
        and bool(connection.oauth_config().get("token_url"))
        and refresh_state.has_refresh_token(app, ws, connection)
    )
