"""Revoke: RFC 7009 with the client credentials where the vendor has such an endpoint, else the
vendor's own endpoint (Zendesk, Shopify: `Connector.revoke`), with a refreshed token if it had expired.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError
from botctl.oauth.protocol import EndpointError, ServerError, revoke_request
from botctl.oauth.refreshing import can_refresh, refresh, still_valid, stored_app

if TYPE_CHECKING:
    from botctl.connections import Connection
    from botctl.connectors.base import Connector
    from botctl.session import Session
    from botctl.workspaces import Workspace


async def revoke(app: Session, ws: Workspace, connection: Connection, connector: Connector) -> dict[str, Any]:
    """Revoke the connection's grant at the vendor; audited (`connection.revoked`). Never raises for a
    vendor failure: the caller deletes the ciphertext whatever happened, and says so.

    Returns {"revoked": "yes" | "unsupported" | "failed: <code>", "method": "rfc7009" | "vendor" | None}."""
    from botctl import connections
    from botctl.connectors.base import ActionError
    from botctl.connectors.http import build_client

    cfg = connection.oauth_config()
    results: list[dict[str, Any]] = []
    method: str | None = None
    if cfg.get("revoke_url") and cfg.get("client_id"):
        method = "rfc7009"
        app_cfg = stored_app(app, ws, connection)
        cred = connections.credential(app, ws, connection)
        # The refresh token first: revoking it SHOULD end the access tokens of the grant too (§2.1).
        for field_name in ("refresh_token", "access_token"):
            if field_name not in cred:
                continue
            try:
                await revoke_request(app_cfg, cred[field_name], field_name)
                results.append({"token": field_name, "ok": True})
            except ServerError as exc:
                # §2.2.1: a server that cannot revoke access tokens says unsupported_token_type.
                ok = exc.error == "unsupported_token_type" and field_name == "access_token"
                results.append({"token": field_name, "ok": ok, "error": exc.error})
            except EndpointError as exc:
                results.append(
                    {
                        "token": field_name,
                        "ok": False,
                        "error": "upstream_unavailable",
                        "message": exc.message,
                    }
                )
    elif connector.revoke is not None:
        method = "vendor"
        current = connection
        if can_refresh(app, ws, connection) and not still_valid(connection, time.time() + 30):
            try:  # the vendor's endpoint needs a working access token
                current = await refresh(app, ws, connection, force=True)
            except BotctlError:
                current = connection
        cred = {
            k: v
            for k, v in connections.credential(app, ws, current).items()
            if k in ("access_token", "api_key")
        }
        try:
            async with build_client(connector, current.config, cred, base_url=current.base_url) as client:
                await connector.revoke(client, current.config)
            results.append({"token": "access_token", "ok": True})
        except ActionError as exc:
            results.append({"token": "access_token", "ok": False, "error": exc.code})
    if method is None:
        revoked = "unsupported"
    elif results and all(r["ok"] for r in results):
        revoked = "yes"
    else:
        failed = [r for r in results if not r["ok"]]
        revoked = "failed: " + (failed[0].get("error") or "error") if failed else "failed: nothing to revoke"
    await app.aaudit(
        "connection.revoked",
        workspace=ws.name,
        connector=connection.connector,
        outcome="ok" if revoked in ("yes", "unsupported") else "error",
        reason=None if revoked in ("yes", "unsupported") else revoked[len("failed: ") :],
        detail={
            "method": method,
            "revoked": revoked,
            "results": [{k: v for k, v in r.items() if k != "message"} for r in results],
        },
    )
    return {"revoked": revoked, "method": method}
