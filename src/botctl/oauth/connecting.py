"""Connect: the client to use (the sandbox's, the workspace's or the global app), then a flow, the
granted-scope check, the vendor's "who am I" check and the encrypted save; audited either way, and
nothing stored unless every step worked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botctl.errors import BotctlError, Transient, UsageError
from botctl.oauth.clients import (
    TOKEN_AUTH_METHODS,
    OAuthApp,
    check_endpoint,
    check_redirect_uri,
    vendor,
    with_redirect_port,
)
from botctl.oauth.flows import (
    DEFAULT_TIMEOUT_S,
    Authorization,
    Clock,
    FlowUI,
    Sleep,
    browser_available,
    browser_flow,
    device_flow,
    paste_flow,
)
from botctl.oauth.protocol import (
    EXIT_DENIED,
    EXIT_MISMATCH,
    ResponseTooLarge,
    apply_metadata,
    fetch_metadata,
    http_client,
    read_capped,
    revoke_quietly,
)
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.connections import Connection
    from botctl.connectors.base import Connector
    from botctl.session import Session
    from botctl.workspaces import Workspace


@dataclass
class ConnectResult:
    connection: Connection
    replaced: bool
    flow: str
    warnings: list[str]


async def sandbox_app(connector: Connector, sandbox_url: str) -> OAuthApp:
    """The sandbox's own OAuth client for `connector`, from GET /_sandbox/credentials."""
    import asyncio
    import json

    import httpx

    try:
        async with (
            asyncio.timeout(15.0),
            http_client(10.0) as http,
            http.stream("GET", sandbox_url.rstrip("/") + "/_sandbox/credentials") as r,
        ):
            creds = json.loads(await read_capped(r))
    except (httpx.HTTPError, ValueError, RecursionError, ResponseTooLarge, TimeoutError):
        raise Transient(
            f"could not read the sandbox's credentials at {sandbox_url}.",
            hint="Is `botctl sandbox serve` running there?",
            code="upstream_unavailable",
        ) from None
    entry = (creds.get(connector.name) or {}).get("oauth") if isinstance(creds, dict) else None
    if not isinstance(entry, dict) or not entry.get("client_id"):
        raise UsageError(
            f"the sandbox at {sandbox_url} has no OAuth app for {connector.vendor}.",
            hint="Use a sandbox with the OAuth server, or pass a token with --access-token-stdin.",
            code="no_oauth_app",
        )
    redirect = None
    for uri in entry.get("redirect_uris") or []:
        try:
            redirect = check_redirect_uri(str(uri))
            break
        except UsageError:
            continue
    v = vendor(connector.name)
    secret = entry.get("client_secret")
    method = entry.get("token_endpoint_auth_method") or (v.token_auth if secret else "none")
    if method not in TOKEN_AUTH_METHODS:
        method = "client_secret_post"
    extensions = entry.get("sandbox_extensions") or []
    if "revoke_url" in extensions and connector.revoke is not None:
        # The real vendor has no RFC 7009 endpoint: revoke the way the real one is revoked.
        entry = {**entry, "revoke_url": None}
    separator = entry.get("scope_separator")
    return OAuthApp(
        connector=connector.name,
        source="sandbox",
        client_id=str(entry["client_id"]),
        client_secret=Secret(secret) if isinstance(secret, str) and secret else None,
        authorize_url=check_endpoint(str(entry["authorize_url"]), "the sandbox authorize URL"),
        token_url=check_endpoint(str(entry["token_url"]), "the sandbox token URL"),
        revoke_url=check_endpoint(str(entry["revoke_url"]), "the sandbox revoke URL")
        if entry.get("revoke_url")
        else None,
        device_url=check_endpoint(str(entry["device_url"]), "the sandbox device URL")
        if entry.get("device_url")
        else None,
        metadata_url=str(entry["metadata_url"]) if entry.get("metadata_url") else None,
        redirect_uri=redirect,
        token_auth=method,
        revoke_auth=method,
        # The connector's own scopes (what its actions need), not everything the sandbox could grant.
        scopes=connector.scopes,
        pkce=True,
        scope_separator=separator if separator in (" ", ",") else v.scope_separator,
        token_params=v.token_params,
        scope_in_token_request=v.scope_in_token_request,
        issuer=str(entry["issuer"]) if entry.get("issuer") else None,
    )


async def app_for(
    app: Session,
    ws: Workspace,
    connector: Connector,
    config: Mapping[str, str],
    *,
    sandbox: str | None = None,
    redirect_port: int | None = None,
) -> OAuthApp:
    """The OAuth client to connect with: the sandbox's (with --sandbox), else the workspace's, else the global one."""
    from botctl.oauth.apps import resolve  # the vault's tables: only when a stored app is wanted

    vendor(connector.name)
    if sandbox:
        app_cfg = await sandbox_app(connector, sandbox)
    else:
        found = resolve(app, ws, connector, config)
        if found is None:
            raise UsageError(
                f"no OAuth app is configured for {connector.vendor}.",
                hint=f"Register yours first: botctl oauth-app set {connector.name} --client-id ID "
                "--client-secret-stdin (see README, 'Bring your own OAuth app'); or pass a vendor-issued "
                "token with --access-token-stdin.",
                code="no_oauth_app",
            )
        app_cfg = found
    if redirect_port is not None:
        app_cfg = with_redirect_port(app_cfg, redirect_port)
    return app_cfg


async def connect(
    app: Session,
    ws: Workspace,
    connector: Connector,
    config: Mapping[str, str],
    app_cfg: OAuthApp,
    *,
    mode: str = "auto",
    ui: FlowUI | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    skip_check: bool = False,
    clock: Clock = time.monotonic,
    sleep: Sleep | None = None,
) -> ConnectResult:
    """Authorize, check the token with the vendor ("who am I"), store it encrypted; audited either way.

    `mode`: auto | browser | no_browser | paste | device. Nothing is stored unless every step worked.
    """
    import asyncio

    from botctl import connections
    from botctl.connectors.base import ActionError
    from botctl.connectors.scopes import missing_scopes

    ui = ui or FlowUI()
    flow = mode
    auth: Authorization | None = None
    warnings: list[str] = []
    try:
        if app_cfg.metadata_url:
            app_cfg = apply_metadata(app_cfg, await fetch_metadata(app_cfg.metadata_url))
        if mode == "auto":
            if browser_available():
                flow = "browser"
            elif app_cfg.device_url:
                flow = "device"
                ui.info("No browser here and the authorization server offers the device flow: using it.")
            else:
                flow = "no_browser"
        if flow == "device":
            auth = await device_flow(app_cfg, ui=ui, vendor_name=connector.vendor, clock=clock, sleep=sleep)
        elif flow == "paste":
            auth = await paste_flow(app_cfg, ui=ui, vendor_name=connector.vendor)
        elif flow in ("browser", "no_browser"):
            auth = await browser_flow(
                app_cfg, ui=ui, vendor_name=connector.vendor, open_it=flow == "browser", timeout=timeout
            )
            flow = auth.flow
        else:
            raise UsageError(f"unknown flow {mode!r}.")
        tokens = auth.tokens
        granted = tokens.scopes if tokens.scopes is not None else app_cfg.scopes
        fewer = missing_scopes(connector, granted, app_cfg.scopes)
        if fewer:
            warnings.append(
                f"{connector.vendor} granted fewer scopes than requested (missing: {', '.join(fewer)}); "
                "actions that need them will be refused."
            )
        label = None
        if skip_check:
            warnings.append(
                f"skipped the {connector.vendor} account check (--skip-check): the token was not tried."
            )
        else:
            try:
                label = await connections.validate(connector, config, {"access_token": tokens.access_token})
            except ActionError as exc:
                await revoke_quietly(app_cfg, tokens)  # nothing will be stored: do not leave a live grant
                raise connections.error_for(exc, connector.vendor, given=True) from None
        stored = dict(config)
        stored.update(
            {
                f"oauth_{k}": v
                for k, v in {
                    "app": app_cfg.source,
                    "client_id": app_cfg.client_id,
                    "token_url": app_cfg.token_url,
                    "revoke_url": app_cfg.revoke_url,
                    "token_auth": app_cfg.token_auth,
                    "revoke_auth": app_cfg.revoke_auth,
                    "issuer": app_cfg.issuer,
                }.items()
                if v
            }
        )
        credential: dict[str, Secret] = {"access_token": tokens.access_token}
        if tokens.refresh_token is not None:
            credential["refresh_token"] = tokens.refresh_token
        if app_cfg.client_secret is not None:
            credential[connections.CLIENT_SECRET_FIELD] = app_cfg.client_secret
        expires_at = (
            connections.epoch_to_iso(time.time() + tokens.expires_in)
            if tokens.expires_in is not None
            else None
        )
        conn, replaced = connections.save(
            app,
            ws,
            connector,
            auth="oauth",
            config=stored,
            credential=credential,
            account_label=label,
            scopes=tuple(granted),
            expires_at=expires_at,
            extra_detail={
                "flow": flow,
                "scopes": list(granted),
                "expires_in": tokens.expires_in,
                "check": "skipped" if skip_check else "ok",
            },
        )
    except BotctlError as exc:
        await app.aaudit(
            "connection.failed",
            workspace=ws.name,
            connector=connector.name,
            outcome="denied" if exc.exit_code in (20, EXIT_DENIED, EXIT_MISMATCH) else "error",
            reason=exc.code,
            detail={"auth": "oauth", "flow": flow, "message": exc.message},
        )
        if auth is not None:
            await auth.finish(False, exc.message)
        raise
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C while waiting: nothing stored, say so
        await app.aaudit(
            "connection.failed",
            workspace=ws.name,
            connector=connector.name,
            outcome="error",
            reason="interrupted",
            detail={"auth": "oauth", "flow": flow},
        )
        raise
    await auth.finish(True)
    return ConnectResult(conn, replaced, flow, warnings)
