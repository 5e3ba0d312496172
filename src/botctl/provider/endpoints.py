"""The provider's endpoints: module-level, Starlette-style, reaching the process's state through
`request.app.state.provider` (botctl.provider.state). Every answer is a wire envelope (botctl.provider.wire)."""

from __future__ import annotations

import os
import time

from starlette.requests import Request  # noqa: TID253 - the provider is a daemon, not the CLI
from starlette.responses import JSONResponse  # noqa: TID253

from botctl import __version__
from botctl.connectors.base import ActionError
from botctl.errors import AuditChainBroken
from botctl.provider.state import Provider
from botctl.provider.wire import PUBLIC_MESSAGE, client_ip_of, error, request_id_of


def _provider(request: Request) -> Provider:
    return request.app.state.provider


async def health(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "ok": True,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - _provider(request).started, 1),
        }
    )


async def status(request: Request) -> JSONResponse:
    from botctl import audit, connections

    reauth = [
        {"workspace": c.workspace, "connector": c.connector, "reason": c.status_reason}
        for c in connections.list_all(_provider(request).app.vault.conn)
        if c.status != "active"
    ]
    committer = _provider(request).app._committer
    # The chain as a writer would find it now (cheap: head vs checkpoint, no walk), plus what the
    # committer refused since the last break: {"chain": "ok" | "broken", "problem"?, ...}.
    vault = _provider(request).app.vault
    try:
        chain = audit.head_state(_provider(request).app.home, vault.audit_key(), vault.conn)
    except Exception as exc:  # status must answer even when audit.db cannot be read
        chain = {"chain": "unknown", "problem": type(exc).__name__}
    chain.pop("head_hash", None)
    chain.pop("checkpoint_hash", None)
    from botctl.audit import alerting, shipping

    prov = _provider(request)
    try:
        sinks, hooks = shipping.backlog(prov.app.home), alerting.status(prov.app.home)
    except Exception as exc:  # status must answer even when shipping.db cannot be read
        sinks, hooks = [{"name": "?", "last_error": type(exc).__name__, "backlog": None}], []
    return JSONResponse(
        {
            "connections_needing_reauth": reauth,
            "refresh": prov.refresh_report(),
            "connections": prov.connection_states(),
            "audit": {
                "batches": committer.batches,
                "records": committer.records,
                "refused": committer.refused,
                **chain,
                "last_verify": _provider(request).shipper.last_verify,
            },
            "audit_sinks": sinks,
            "alert_webhooks": hooks,
            "answers": prov.answers.status(),
        }
    )


async def ws_config(request: Request) -> JSONResponse:
    ws = _provider(request).workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", ""))
    from botctl.identity.workspace_rules import settings

    issuer = settings(_provider(request).app.vault.conn, ws)[
        0
    ]  # named in the MCP endpoint's RFC 9728 metadata
    return JSONResponse(
        {
            "status": 200,
            "body": {
                **_provider(request).widget_config(ws),
                "origins": list(ws.origins),
                "identity_issuer": issuer,
            },
        }
    )


async def widget_config(request: Request) -> JSONResponse:
    ws = _provider(request).workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", ""))
    return JSONResponse({"status": 200, "body": _provider(request).widget_config(ws)})


async def catalog(request: Request) -> JSONResponse:
    ws = _provider(request).workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", ""))
    return JSONResponse(
        {"status": 200, "body": {"workspace": ws.name, "actions": _provider(request).available(ws)}}
    )


async def run(request: Request) -> JSONResponse:
    from botctl.actions import run_action, visitor_actor

    data = await request.json()
    rid = request_id_of(data)
    ws_name, action = request.path_params["ws"], request.path_params["action"]
    prov = _provider(request)
    ws = prov.workspace(ws_name)
    # A token that fails is a refusal (never a silent downgrade to anonymous); run_action audits it,
    # like an unknown workspace, as one action.run record.
    visitor, bad = await prov.verify(ws, data.get("identity_token")) if ws is not None else (None, None)
    try:
        result = await run_action(
            prov.app,
            ws_name,
            action,
            visitor=visitor,
            params=data.get("params"),
            request_id=rid,
            actor=visitor_actor(visitor),
            identity_error=bad,
            client_ip=client_ip_of(data),
        )
    except AuditChainBroken:
        # Fail closed: nothing runs while it cannot be recorded (logged once by the committer; the
        # operator seals or repairs the chain: `botctl audit verify`, `botctl audit seal-break`).
        return JSONResponse(error("audit_unavailable", PUBLIC_MESSAGE["audit_unavailable"], rid))
    except ActionError as exc:
        # "Not yours" and "does not exist" look the same to a visitor (ids are often sequential: the
        # difference would tell which exist); the audit record keeps which it was.
        code = "not_found" if exc.code == "forbidden" else exc.code
        msg = PUBLIC_MESSAGE.get(code, exc.message)
        return JSONResponse(error(code, msg, rid, retry_after=exc.retry_after))
    return JSONResponse({"status": 200, "body": result})


async def chat(request: Request) -> JSONResponse:
    """Answers from the workspace's own knowledge: every plan, no credential touched."""
    data = await request.json()
    rid = request_id_of(data)
    prov = _provider(request)
    ws = prov.workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", rid))
    visitor, bad = await prov.verify(ws, data.get("identity_token"))
    if bad is not None:
        await prov.app.aaudit(
            "chat.refused",
            workspace=ws.name,
            actor={"type": "visitor"},
            outcome="denied",
            reason="invalid_identity",
            request_id=rid,
            detail={"identity_reason": bad, "client_ip": client_ip_of(data)},
        )
        return JSONResponse(error("invalid_identity", PUBLIC_MESSAGE["invalid_identity"], rid))
    actions = prov.available(ws)
    result = await prov.answers.answer(ws, str(data.get("message", "")), actions)
    for s in result.get("suggested_actions") or []:
        # The widget shows customer-specific actions as "sign in to use this" to anonymous visitors.
        s["needs_sign_in"] = bool(s.get("customer_specific")) and visitor is None
    from botctl.feedback import answer_id
    from botctl.knowledge.links import cite

    question = str(data.get("message", ""))
    body = {
        "answer": result["answer"],
        "grounded": result["grounded"],
        "citations": cite(prov.app.vault.conn, ws.id, result["citations"]),
        "suggested_actions": result.get("suggested_actions") or [],
        # What a thumbs up / down refers to (botctl.feedback): nothing is stored until a vote.
        "answer_id": answer_id(prov.feedback_key(), ws.id, question, result["answer"], result["grounded"]),
        "conversation_id": data.get("conversation_id"),
        "request_id": rid,
    }
    return JSONResponse({"status": 200, "body": body})


async def feedback(request: Request) -> JSONResponse:
    """A visitor's thumbs up / down on an answer this workspace gave (botctl.feedback)."""
    from botctl.feedback import FeedbackRefused, record

    data = await request.json()
    rid = request_id_of(data)
    prov = _provider(request)
    ws = prov.workspace(request.path_params["ws"])
    if ws is None:
        return JSONResponse(error("unknown_workspace", "No such workspace.", rid))
    visitor, bad = await prov.verify(ws, data.get("identity_token"))
    if bad is not None:  # recorded as on chat: a route that takes a token is no silent oracle for forged ones
        await prov.app.aaudit(
            "feedback.refused",
            workspace=ws.name,
            actor={"type": "visitor"},
            outcome="denied",
            reason="invalid_identity",
            request_id=rid,
            detail={"identity_reason": bad, "client_ip": client_ip_of(data)},
        )
        return JSONResponse(error("invalid_identity", PUBLIC_MESSAGE["invalid_identity"], rid))
    try:
        record(
            prov.app.vault.conn,
            prov.feedback_key(),
            ws,
            data.get("answer_id"),
            data.get("vote"),
            data.get("question"),
            data.get("answer"),
            visitor.sub if visitor is not None else None,
        )
    except FeedbackRefused:
        return JSONResponse(error("invalid_request", "That vote is not about an answer given here.", rid))
    return JSONResponse({"status": 200, "body": {"recorded": True, "request_id": rid}})
