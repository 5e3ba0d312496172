"""The MCP server: JSON-RPC 2.0 messages in, answers out, for one caller in one workspace.

Hand-written, and small on purpose: botctl serves four methods (`initialize`, `ping`, `tools/list`,
`tools/call`) and accepts notifications; it keeps no session (every request carries its bearer token and is
judged on its own), so the SDK's session manager, task groups and SSE machinery would add ~30 modules and
pydantic to the process for nothing this needs (docs/architecture.md, "MCP"). The provider's endpoint
(botctl.provider.mcp) and `botctl mcp serve --stdio` (botctl.mcp.stdio) both call `handle`.

Every tool call goes through `actions.run_action`, audited like any other action with the caller's actor
(`channel: "mcp"`); a write stops at `Caller.hold` (the visitor's confirmation, or the operator's).
Refusals from the one error catalogue are tool errors (`isError`, `structuredContent.error.code`); a refused
identity token is refused for every method (HTTP 401), never served as anonymous.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botctl.connectors.base import Visitor
    from botctl.session import Session

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")  # newest first: what we answer with by default
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
IDENTITY_REFUSED = -32001  # server-defined: the bearer token was refused (HTTP 401 on the HTTP transport)
INSTRUCTIONS = (
    "Tools act for the signed-in customer only, on their own records. A tool that changes something "
    "returns confirmation_required: tell the customer what will happen and ask them to confirm it in "
    "the chat widget; then check botctl__confirmation_status for the outcome."
)
_RESULTS: OrderedDict[str, tuple[str, dict[str, Any]]] = (
    OrderedDict()
)  # confirmation id → (visitor sub, answer)
_RESULTS_MAX = 1000


@dataclass
class Caller:
    app: Session
    workspace: str
    visitor: Visitor | None
    actor: dict[str, Any]
    request_id: str
    client_ip: str | None = None
    identity_error: str | None = None  # the token's refusal reason: every request is refused
    operator: bool = False
    hold: Callable[..., Awaitable[dict[str, Any] | None]] | None = None


def mcp_actor(visitor: Visitor | None) -> dict[str, Any]:
    from botctl.actions import visitor_actor

    return {**visitor_actor(visitor), "channel": "mcp"}


def remember_result(cid: str, sub: str, answer: Any) -> None:
    """What a confirmed action answered, for the bot's botctl__confirmation_status (memory only, bounded: at
    most `_RESULTS_MAX` answers of at most 64 KiB each; a larger one is left out, its outcome code stays)."""
    if len(json.dumps(answer, ensure_ascii=False)) > 64 * 1024:
        return
    _RESULTS[cid] = (sub, answer)
    while len(_RESULTS) > _RESULTS_MAX:
        _RESULTS.popitem(last=False)


def _error(mid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": mid, "error": err}


def _result(mid: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": mid, "result": result}


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str) and len(value) <= 200) or (
        isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53
    )


def tool_error(code: str, message: str) -> dict[str, Any]:
    return {
        "content": [{"type": "text", "text": f"{code}: {message}"}],
        "isError": True,
        "structuredContent": {"error": {"code": code, "message": message}},
    }


async def handle(c: Caller, msg: Any) -> tuple[int, dict[str, Any] | None]:
    """(HTTP status, JSON-RPC answer or None for 202 Accepted) for one JSON-RPC message."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        return 400, _error(
            None,
            INVALID_REQUEST,
            'Send one JSON-RPC 2.0 message (an object with "jsonrpc": "2.0"); batches are not supported.',
        )
    method = msg.get("method")
    if c.identity_error is not None:  # whatever the message: a refused token is refused (HTTP 401), audited
        mid = msg.get("id") if _valid_id(msg.get("id")) else None
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        return await _refused(c, mid, method if isinstance(method, str) else "", params)
    if method is None and ("result" in msg or "error" in msg) and "id" in msg:
        return 202, None  # a response to a request of ours (botctl sends none): accepted, nothing to do
    if not isinstance(method, str) or len(method) > 100:
        return 400, _error(
            msg.get("id") if _valid_id(msg.get("id")) else None, INVALID_REQUEST, '"method" must be a string.'
        )
    if "id" not in msg:
        return 202, None  # a notification (notifications/initialized, cancelled, ...): accepted
    mid = msg["id"]
    if not _valid_id(mid):
        return 400, _error(None, INVALID_REQUEST, '"id" must be a string or an integer.')
    params = msg.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return 200, _error(mid, INVALID_PARAMS, '"params" must be an object.')
    if method == "initialize":
        return 200, _result(mid, _initialize(params))
    if method == "ping":
        return 200, _result(mid, {})
    if method == "tools/list":
        return 200, _result(mid, {"tools": _tools(c)})
    if method == "tools/call":
        return await _call(c, mid, params)
    return 200, _error(
        mid, METHOD_NOT_FOUND, "Method not found (botctl serves initialize, ping, tools/list and tools/call)."
    )


def _initialize(params: dict[str, Any]) -> dict[str, Any]:
    from botctl import __version__

    asked = params.get("protocolVersion")
    version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
    return {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "botctl", "title": "botctl", "version": __version__},
        "instructions": INSTRUCTIONS,
    }


def _tools(c: Caller) -> list[dict[str, Any]]:
    from botctl import workspaces
    from botctl.mcp.confirmations import waived
    from botctl.mcp.tools import tools_for

    conn = c.app.vault.conn
    ws = workspaces.find(conn, c.workspace)
    if ws is None:
        return []
    return tools_for(conn, ws, signed_in=c.visitor is not None, operator=c.operator, waived=waived(conn, ws))


async def _refused(c: Caller, mid: Any, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A refused token refuses the request, audited (a tool call through run_action, as the action API does)."""
    from botctl.actions import run_action
    from botctl.connectors.base import ActionError
    from botctl.mcp.tools import action_name

    name = params.get("name")
    if method == "tools/call" and isinstance(name, str) and name:
        try:
            await run_action(
                c.app,
                c.workspace,
                action_name(name[:200]),
                visitor=None,
                params={},
                actor=c.actor,
                request_id=c.request_id,
                identity_error=c.identity_error,
                client_ip=c.client_ip,
            )
        except ActionError:
            pass
    else:
        await c.app.aaudit(
            "mcp.refused",
            workspace=c.workspace,
            actor=c.actor,
            outcome="denied",
            reason="invalid_identity",
            request_id=c.request_id,
            detail={"identity_reason": c.identity_error, "method": method[:100], "client_ip": c.client_ip},
        )
    return 401, _error(mid, IDENTITY_REFUSED, "The identity token was refused.", {"code": "invalid_identity"})


async def _call(c: Caller, mid: Any, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from botctl.actions import run_action
    from botctl.connectors.base import ActionError
    from botctl.errors import AuditChainBroken
    from botctl.mcp.tools import STATUS_TOOL, action_name
    from botctl.provider.wire import PUBLIC_MESSAGE

    name, args = params.get("name"), params.get("arguments")
    if not isinstance(name, str) or not name or len(name) > 200:
        return 200, _error(mid, INVALID_PARAMS, '"name" must be the name of a tool from tools/list.')
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return 200, _error(mid, INVALID_PARAMS, '"arguments" must be an object.')
    if name == STATUS_TOOL and not c.operator:
        return 200, _result(mid, _status(c, args))
    try:
        answer = await run_action(
            c.app,
            c.workspace,
            action_name(name),
            visitor=c.visitor,
            params=args,
            request_id=c.request_id,
            actor=c.actor,
            client_ip=c.client_ip,
            hold=c.hold,
        )
    except AuditChainBroken:
        return 200, _result(mid, tool_error("audit_unavailable", PUBLIC_MESSAGE["audit_unavailable"]))
    except ActionError as exc:
        # As on the action API: "not yours" and "does not exist" look the same to a visitor.
        code = "not_found" if exc.code == "forbidden" and not c.operator else exc.code
        return 200, _result(
            mid, tool_error(code, PUBLIC_MESSAGE.get(code, exc.message) if not c.operator else exc.message)
        )
    held = answer.get("confirmation_required")
    if held is not None:
        text = (
            f"Not done yet: this needs the customer's confirmation. {held['summary']}\n"
            f"Ask the customer to confirm it in the chat widget (confirmation id {held['confirmation_id']}, "
            f"valid {held['expires_in_s']} s), then call {STATUS_TOOL} for the outcome."
        )
        return 200, _result(
            mid,
            {
                "content": [{"type": "text", "text": text}],
                "structuredContent": {"confirmation_required": held},
                "isError": False,
            },
        )
    result = answer["result"]
    return 200, _result(
        mid,
        {
            "content": [{"type": "text", "text": json.dumps(result, ensure_ascii=False)}],
            "structuredContent": {"result": result},
            "isError": False,
        },
    )


def _status(c: Caller, args: dict[str, Any]) -> dict[str, Any]:
    from botctl import workspaces
    from botctl.mcp import confirmations

    cid = args.get("confirmation_id")
    ws = workspaces.find(c.app.vault.conn, c.workspace)
    row = confirmations.get(c.app, ws, cid) if ws is not None and isinstance(cid, str) else None
    if row is None or not row.belongs_to(c.visitor):
        return tool_error("not_found", "No such confirmation for you.")
    status = row.status
    if status == "pending" and row.expires_at <= time.time():
        status = "expired"
    out: dict[str, Any] = {"confirmation_id": row.id, "status": status, "outcome": row.outcome}
    kept = _RESULTS.get(row.id)
    if kept is not None and c.visitor is not None and kept[0] == c.visitor.sub:
        out["result"] = kept[1]
    text = {
        "pending": "The customer has not answered yet.",
        "cancelled": "The customer cancelled it; nothing was done.",
        "expired": "It expired before the customer confirmed it; nothing was done.",
        "confirmed": f"The customer confirmed it; outcome: {row.outcome or 'running'}.",
    }[status]
    return {
        "content": [
            {
                "type": "text",
                "text": text
                + ("\n" + json.dumps(out.get("result"), ensure_ascii=False) if "result" in out else ""),
            }
        ],
        "structuredContent": out,
        "isError": False,
    }
