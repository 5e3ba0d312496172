"""The edge's MCP transport: Streamable HTTP (MCP 2025-06-18 / 2025-11-25) with JSON answers, the visitor's
answer to a confirmation, and the endpoint's RFC 9728 protected-resource metadata.

    POST /v1/workspaces/{ws}/mcp                    one JSON-RPC message → its answer (application/json), or
                                                    202 with no body for a notification or response
    GET /v1/workspaces/{ws}/confirmations           the signed-in visitor's changes still waiting for them
    GET|POST /v1/workspaces/{ws}/confirmations/{id} the summary of a change waiting for the visitor / their
                                                    answer ({"decision": "confirm" | "cancel"})
    GET /.well-known/oauth-protected-resource/v1/workspaces/{ws}/mcp    RFC 9728 metadata

The edge holds nothing and understands no more JSON-RPC than it must: the body is read under the same
limits as every request (64 KiB, nesting, strict JSON), the bearer token is forwarded as data, and the
provider (botctl.provider.mcp) verifies it, lists and runs the tools, and audits. No session is kept (no
`Mcp-Session-Id`): each request stands on its own token. No SSE stream is offered (GET on /mcp is 405).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from botctld.bodies import identity_token, json_object, json_value
from botctld.state import Edge, err, seg

# The MCP revisions botctl speaks (the same list as botctl.mcp.server.PROTOCOL_VERSIONS; a test keeps them equal).
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
_HOST = re.compile(
    r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::\d{1,5})?"
)


def _edge(request: Request) -> Edge:
    return request.app.state.edge


def _limited(request: Request, token: str | None) -> Response | None:
    if token is None:
        return None
    wait = _edge(request).visitor_limits.take("v:" + hashlib.sha256(token.encode()).hexdigest())
    if not wait:
        return None
    return err(
        "rate_limited",
        "Too many requests; slow down.",
        request.state.rid,
        {**request.state.cors, "Retry-After": str(max(1, int(wait + 0.999)))},
    )


def _base(request: Request) -> str:
    """This edge's origin as the client reached it (a Host header of any other shape is not echoed)."""
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host):
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"[{server[0]}]:{server[1]}" if ":" in str(server[0]) else f"{server[0]}:{server[1]}"
    return f"{request.url.scheme}://{host}"


def metadata_url(request: Request, ws: str) -> str:
    return f"{_base(request)}/.well-known/oauth-protected-resource/v1/workspaces/{seg(ws)}/mcp"


async def endpoint(request: Request) -> Response:
    ws, rid, cors = request.path_params["ws"], request.state.rid, request.state.cors
    version = request.headers.get("mcp-protocol-version")
    if version is not None and version not in PROTOCOL_VERSIONS:
        return JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": -32600,
                    "message": f"Unsupported MCP-Protocol-Version; botctl speaks {', '.join(PROTOCOL_VERSIONS)}.",
                },
            },
            status_code=400,
            headers=cors,
        )
    message, bad = await json_value(request)
    if bad is not None:
        return bad
    token = identity_token(request)
    limited = _limited(request, token)
    if limited is not None:
        return limited
    answer = await _edge(request).provider(
        "POST",
        f"/v1/workspaces/{seg(ws)}/mcp",
        {
            "message": message,
            "identity_token": token,
            "request_id": rid,
            "client_ip": request.state.client_ip,
        },
    )
    headers = {**cors, **(answer.get("headers") or {})}
    if answer["status"] == 202:
        return Response(status_code=202, headers=cors)
    if answer["status"] == 401:
        # RFC 9728 §5.1: where to learn how tokens for this resource are obtained.
        headers["WWW-Authenticate"] = (
            f'Bearer error="invalid_token", resource_metadata="{metadata_url(request, ws)}"'
        )
    return JSONResponse(answer["body"], status_code=answer["status"], headers=headers)


async def pending(request: Request) -> Response:
    """The signed-in visitor's confirmations still waiting (the widget shows them when it opens)."""
    ws, rid, cors = request.path_params["ws"], request.state.rid, request.state.cors
    token = identity_token(request)
    limited = _limited(request, token)
    if limited is not None:
        return limited
    answer = await _edge(request).provider(
        "POST",
        f"/v1/workspaces/{seg(ws)}/confirmations",
        {"identity_token": token, "request_id": rid, "client_ip": request.state.client_ip},
    )
    return JSONResponse(
        answer["body"], status_code=answer["status"], headers={**cors, **(answer.get("headers") or {})}
    )


async def confirmation(request: Request) -> Response:
    ws, cid, rid, cors = (
        request.path_params["ws"],
        request.path_params["cid"],
        request.state.rid,
        request.state.cors,
    )
    if request.method == "GET":
        decision: Any = "show"
    else:
        body, bad = await json_object(request, {"decision"}, '{"decision": "confirm" | "cancel"}')
        if bad is not None:
            return bad
        decision = body.get("decision")  # type: ignore[union-attr]
        if decision not in ("confirm", "cancel"):
            return err("invalid_request", 'decision must be "confirm" or "cancel".', rid, cors)
    token = identity_token(request)
    limited = _limited(request, token)
    if limited is not None:
        return limited
    answer = await _edge(request).provider(
        "POST",
        f"/v1/workspaces/{seg(ws)}/confirmations/{seg(cid)}",
        {
            "decision": decision,
            "identity_token": token,
            "request_id": rid,
            "client_ip": request.state.client_ip,
        },
    )
    return JSONResponse(
        answer["body"], status_code=answer["status"], headers={**cors, **(answer.get("headers") or {})}
    )


async def protected_resource(request: Request) -> Response:
    """RFC 9728 metadata for the workspace's MCP endpoint: public, the same for every caller."""
    ws, rid = request.path_params["ws"], request.state.rid
    status, config = await _edge(request).ws_config(ws)
    if status == 404:
        return err("unknown_workspace", "No such workspace.", rid, {"Access-Control-Allow-Origin": "*"})
    body: dict[str, Any] = {
        "resource": f"{_base(request)}/v1/workspaces/{seg(ws)}/mcp",
        "bearer_methods_supported": ["header"],
        "resource_name": f"{config.get('display_name') or ws} (botctl)",
    }
    issuer = config.get("identity_issuer")
    if isinstance(issuer, str) and issuer:
        body["authorization_servers"] = [issuer]  # who signs this workspace's visitor tokens
    return JSONResponse(
        body, headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}
    )
