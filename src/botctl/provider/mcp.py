"""The provider's MCP endpoints: the JSON-RPC message the edge forwards, and the visitor's answer to a
confirmation. Protocol (JSON both ways, the same envelope as every provider answer, botctl.provider.wire):

    POST /v1/workspaces/{ws}/mcp                    {"message", "identity_token"?, "request_id", "client_ip"?}
         → {"status": 200 | 202 | 400 | 401, "body": <JSON-RPC answer> | null, "headers"?}
    POST /v1/workspaces/{ws}/confirmations          {"identity_token"?, "request_id"} → the visitor's pending ones
    POST /v1/workspaces/{ws}/confirmations/{id}     {"decision": "show" | "confirm" | "cancel",
                                                     "identity_token"?, "request_id", "client_ip"?}
         → show: the summary; confirm: the action's answer (as POST .../actions/{a}); cancel: {"ok", "status"}

Audit: the request is `action.confirmation_requested` (outcome pending, from run_action), the visitor's
answer `action.confirmation` (ok when confirmed; denied when cancelled, expired, already answered, not theirs,
or without a good widget token: the bot's token, signed `botctl_use: "mcp"`, is `invalid_identity` with
identity reason `wrong_use`, so a bot cannot answer its own ask), then the action's own `action.run` (detail.confirmation_id links them).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request  # noqa: TID253 - the provider is a daemon, not the CLI
from starlette.responses import JSONResponse  # noqa: TID253

from botctl.provider.wire import PUBLIC_MESSAGE, client_ip_of, error, request_id_of

DECISIONS = ("show", "confirm", "cancel")


def visitor_hold(app: Any, visitor: Any, request_id: str):  # noqa: ANN201
    """A write asked for over MCP: stored for the visitor's confirmation (unless the workspace waived it)."""
    from botctl.connectors import registry
    from botctl.connectors.base import ActionError
    from botctl.mcp import confirmations

    async def hold(ws: Any, action: str, spec: Any, params: dict[str, Any]) -> dict[str, Any] | None:
        if action in confirmations.waived(app.vault.conn, ws):
            return {"audit": {"confirmation": "waived"}}
        if visitor is None:
            raise ActionError("identity_required", "A change needs a signed-in visitor to confirm it.")
        found = registry.find_action(action)
        summary = confirmations.summarize(spec, found[0].vendor if found else action, params)
        row = confirmations.create(app, ws, action, params, visitor, summary, request_id)
        return {
            "public": row.public(),
            "audit": {"confirmation_id": row.id, "ttl_s": int(confirmations.TTL_S)},
        }

    return hold


async def mcp(request: Request) -> JSONResponse:
    from botctl.mcp.confirmations import expire_due
    from botctl.mcp.server import Caller, handle, mcp_actor

    data = await request.json()
    prov = request.app.state.provider
    await expire_due(
        prov.app
    )  # also every refresh interval (Provider.refresh_loop): the bot may not come back
    rid = request_id_of(data)
    ws = prov.workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", rid))
    # Only a token signed for a bot (botctl_use "mcp"): the widget's token, which answers confirmations, is refused.
    visitor, bad = await prov.verify(ws, data.get("identity_token"), use="mcp")
    caller = Caller(
        prov.app,
        ws.name,
        visitor,
        mcp_actor(visitor),
        rid,
        client_ip=client_ip_of(data),
        identity_error=bad,
        hold=visitor_hold(prov.app, visitor, rid),
    )
    status, body = await handle(caller, data.get("message"))
    out: dict[str, Any] = {"status": status, "body": body}
    if status == 401:
        out["headers"] = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return JSONResponse(out)


async def pending(request: Request) -> JSONResponse:
    """The visitor's confirmations still waiting (the widget shows them when it opens). Reading, not answering:
    a missing token is refused and nothing recorded; a refused one is recorded (`mcp.refused`), as on every
    other route that takes a token, so this one is no silent oracle for trying forged tokens."""
    from botctl.errors import AuditChainBroken
    from botctl.mcp import confirmations
    from botctl.mcp.server import mcp_actor

    data = await request.json()
    prov = request.app.state.provider
    rid = request_id_of(data)
    ws = prov.workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", rid))
    visitor, bad = await prov.verify(ws, data.get("identity_token"))
    if bad:
        try:
            await prov.app.aaudit(
                "mcp.refused",
                workspace=ws.name,
                actor=mcp_actor(None),
                outcome="denied",
                reason="invalid_identity",
                request_id=rid,
                detail={
                    "identity_reason": bad,
                    "method": "confirmations/list",
                    "client_ip": client_ip_of(data),
                },
            )
        except AuditChainBroken:
            return JSONResponse(error("audit_unavailable", PUBLIC_MESSAGE["audit_unavailable"], rid))
    if bad or visitor is None:
        code = "invalid_identity" if bad else "identity_required"
        return JSONResponse(error(code, PUBLIC_MESSAGE.get(code, "Sign in to see this."), rid))
    rows = confirmations.pending_for(prov.app, ws, visitor)
    return JSONResponse(
        {"status": 200, "body": {"confirmations": [r.public() for r in rows], "request_id": rid}}
    )


async def confirmation(request: Request) -> JSONResponse:
    from botctl.actions import escaped, run_action
    from botctl.connectors.base import ActionError
    from botctl.errors import AuditChainBroken
    from botctl.mcp import confirmations
    from botctl.mcp.server import mcp_actor, remember_result

    data = await request.json()
    prov = request.app.state.provider
    rid, ip = request_id_of(data), client_ip_of(data)
    ws = prov.workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", rid))
    decision = data.get("decision")
    if decision not in DECISIONS:
        return JSONResponse(error("invalid_request", "decision must be confirm or cancel.", rid))
    cid = str(request.path_params["cid"])[:64]
    visitor, bad = await prov.verify(ws, data.get("identity_token"))
    refusal = "invalid_identity" if bad else "identity_required" if visitor is None else None
    row, code = None, refusal
    if refusal is None:
        if decision == "show":
            row = confirmations.get(prov.app, ws, cid)
            if row is None or not row.belongs_to(visitor):
                return JSONResponse(error("not_found", PUBLIC_MESSAGE["not_found"], rid))
            return JSONResponse({"status": 200, "body": {**row.public(), "request_id": rid}})
        row, code = confirmations.decide(prov.app, ws, cid, visitor, decision)
    # The id from the URL is the visitor's text: recorded as given only in the shape botctl issues.
    well_formed = confirmations.ID_SHAPE.fullmatch(cid) is not None
    detail: dict[str, Any] = {
        "confirmation_id": cid if well_formed else None,
        "requested_id": None if well_formed else escaped(cid, 64),
        "decision": decision,
        "client_ip": ip,
    }
    if bad:
        detail["identity_reason"] = bad
    if row is not None:
        detail["requested_in"] = row.request_id  # the request id of the action.confirmation_requested record
    outcome, reason = (
        ("ok", None) if code is None and decision == "confirm" else ("denied", code or "confirmation_refused")
    )
    try:
        await prov.app.aaudit(
            "action.confirmation",
            workspace=ws.name,
            actor=mcp_actor(visitor),
            action=row.action if row else None,
            connector=row.action.split(".")[0] if row else None,
            outcome=outcome,
            reason=reason,
            request_id=rid,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    except AuditChainBroken:
        return JSONResponse(error("audit_unavailable", PUBLIC_MESSAGE["audit_unavailable"], rid))
    if code is not None:
        msg = (
            PUBLIC_MESSAGE.get(code)
            or {
                "identity_required": "Sign in to answer this.",
                "confirmation_expired": "This request expired; nothing was done.",
                "confirmation_used": "This request was already answered.",
            }[code]
        )
        return JSONResponse(error(code, msg, rid))
    assert row is not None and visitor is not None
    if decision == "cancel":
        return JSONResponse(
            {
                "status": 200,
                "body": {"ok": True, "status": "cancelled", "confirmation_id": row.id, "request_id": rid},
            }
        )
    try:
        answer = await run_action(
            prov.app,
            ws.name,
            row.action,
            visitor=visitor,
            params=row.params,
            request_id=rid,
            actor=mcp_actor(visitor),
            client_ip=ip,
            note={"confirmation_id": row.id},
        )
    except AuditChainBroken:
        confirmations.finish(prov.app, row.id, "audit_unavailable")
        return JSONResponse(error("audit_unavailable", PUBLIC_MESSAGE["audit_unavailable"], rid))
    except ActionError as exc:
        code = "not_found" if exc.code == "forbidden" else exc.code
        confirmations.finish(prov.app, row.id, code)
        remember_result(row.id, visitor.sub, {"ok": False, "error": {"code": code}})
        return JSONResponse(
            error(code, PUBLIC_MESSAGE.get(code, exc.message), rid, retry_after=exc.retry_after)
        )
    confirmations.finish(prov.app, row.id, "ok")
    remember_result(row.id, visitor.sub, answer["result"])
    return JSONResponse({"status": 200, "body": {**answer, "confirmation_id": row.id}})
