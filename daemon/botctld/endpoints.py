"""The edge's endpoints: module-level, Starlette-style, reaching their state through `request.app.state.edge`.

Workspace routes run behind `middleware.WorkspaceGuard` (CORS for the workspace's origins, preflights),
which leaves the CORS headers to add in `request.state.cors`; every request has passed the Envelope
(request id, client address, per-IP limit) before it gets here.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from botctld import __version__
from botctld.bodies import identity_token, json_object
from botctld.openapi import spec
from botctld.state import Edge, ProviderDown, err, seg

ACTION_NAME = re.compile(r"[a-z0-9_]{1,40}\.[a-z0-9_]{1,60}")


def _edge(request: Request) -> Edge:
    return request.app.state.edge


def relay(answer: dict[str, Any], cors: dict[str, str]) -> JSONResponse:
    """The provider's answer to the visitor as it is: status, body, headers (Retry-After), plus CORS."""
    return JSONResponse(
        answer["body"], status_code=answer["status"], headers={**cors, **(answer.get("headers") or {})}
    )


async def widget_config(request: Request) -> Response:
    ws = request.path_params["ws"]
    return relay(
        await _edge(request).provider("GET", f"/v1/workspaces/{seg(ws)}/widget-config"), request.state.cors
    )


async def actions(request: Request) -> Response:
    ws = request.path_params["ws"]
    return relay(
        await _edge(request).provider("GET", f"/v1/workspaces/{seg(ws)}/actions"), request.state.cors
    )


async def run_action(request: Request) -> Response:
    edge, ws, action = _edge(request), request.path_params["ws"], request.path_params["action"]
    rid, cors = request.state.rid, request.state.cors
    body, bad = await json_object(request, {"params"}, '{"params": {...}}')
    if bad is not None:
        return bad
    params = body.get("params", {})  # type: ignore[union-attr]
    if not isinstance(params, dict):
        return err("invalid_params", "params must be a JSON object.", rid, cors)
    token = identity_token(request)
    if token is not None:
        wait = edge.visitor_limits.take("v:" + hashlib.sha256(token.encode()).hexdigest())
        if wait:
            return err(
                "rate_limited",
                "Too many requests; slow down.",
                rid,
                {**cors, "Retry-After": str(max(1, int(wait + 0.999)))},
            )
    answer = await edge.provider(
        "POST",
        f"/v1/workspaces/{seg(ws)}/actions/{seg(action)}",
        {"params": params, "identity_token": token, "request_id": rid, "client_ip": request.state.client_ip},
    )
    outcome = "ok" if answer["status"] == 200 else answer["body"].get("error", {}).get("code", "error")
    known = ACTION_NAME.fullmatch(action) and outcome not in ("unknown_action", "unknown_workspace")
    edge.metrics.action(action if known else "unknown", outcome)  # invented names add no series
    return relay(answer, cors)


async def chat(request: Request) -> Response:
    ws, rid, cors = request.path_params["ws"], request.state.rid, request.state.cors
    body, bad = await json_object(
        request, {"message", "conversation_id"}, '{"message": "...", "conversation_id"?: "..."}'
    )
    if bad is not None:
        return bad
    message, conv = body.get("message"), body.get("conversation_id")  # type: ignore[union-attr]
    if not isinstance(message, str) or not message.strip() or len(message) > 2000:
        return err(
            "invalid_request", "message must be a non-empty string of at most 2000 characters.", rid, cors
        )
    if conv is not None and (not isinstance(conv, str) or len(conv) > 64):
        return err("invalid_request", "conversation_id must be a string of at most 64 characters.", rid, cors)
    answer = await _edge(request).provider(
        "POST",
        f"/v1/workspaces/{seg(ws)}/chat",
        {
            "message": message,
            "conversation_id": conv,
            "identity_token": identity_token(request),
            "request_id": rid,
            "client_ip": request.state.client_ip,
        },
    )
    return relay(answer, cors)


async def feedback(request: Request) -> Response:
    """A thumbs up / down on an answer: the provider stores it only for an answer it gave (answer_id)."""
    ws, rid, cors = request.path_params["ws"], request.state.rid, request.state.cors
    body, bad = await json_object(
        request,
        {"answer_id", "vote", "question", "answer"},
        '{"answer_id": "...", "vote": "up"|"down", "question": "...", "answer": "..."}',
    )
    if bad is not None:
        return bad
    b: dict[str, Any] = body  # type: ignore[assignment]
    if (
        b.get("vote") not in ("up", "down")
        or not isinstance(b.get("answer_id"), str)
        or len(b["answer_id"]) > 80
    ):
        return err(
            "invalid_request", 'vote must be "up" or "down", with the answer_id of the answer.', rid, cors
        )
    if (
        not isinstance(b.get("question"), str)
        or len(b["question"]) > 2000
        or not isinstance(b.get("answer"), str)
        or len(b["answer"]) > 8000
    ):
        return err("invalid_request", "question and answer must be the strings the chat gave.", rid, cors)
    answer = await _edge(request).provider(
        "POST",
        f"/v1/workspaces/{seg(ws)}/feedback",
        {
            **{k: b[k] for k in ("answer_id", "vote", "question", "answer")},
            "identity_token": identity_token(request),
            "request_id": rid,
            "client_ip": request.state.client_ip,
        },
    )
    return relay(answer, cors)


async def healthz(_: Request) -> Response:
    return JSONResponse({"ok": True, "version": __version__})


async def readyz(request: Request) -> Response:
    try:
        answer = await _edge(request).provider("GET", "/health")
        return JSONResponse({"ok": True, "provider": {"version": answer.get("version")}})
    except ProviderDown:
        return err("provider_unavailable", "The provider is not reachable.", request.state.rid)


async def metrics(request: Request) -> Response:
    edge = _edge(request)
    try:
        status = await edge.provider("GET", "/v1/status")
    except ProviderDown:
        status = None
    return Response(edge.metrics.render(status), media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(_: Request) -> Response:
    return JSONResponse(spec())


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip (a listed `gzip` or `*` without q=0)."""
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.replace(" ", "")
            try:
                return not q.startswith("q=") or float(q[2:]) > 0
            except ValueError:
                return False
    return False


async def widget(request: Request) -> Response:
    # Public, credential-free: `*` lets sites pin it with integrity=... crossorigin="anonymous".
    edge = _edge(request)
    gz = _accepts_gzip(request.headers.get("accept-encoding", ""))
    etag = edge.widget_gz_etag if gz else edge.widget_etag
    headers = {
        "Cache-Control": "public, max-age=300",
        "ETag": etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Access-Control-Allow-Origin": "*",
    }
    if etag in request.headers.get("if-none-match", "").replace(" ", "").split(","):
        return Response(status_code=304, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
    return Response(
        edge.widget_gz if gz else edge.widget_js,
        media_type="application/javascript; charset=utf-8",
        headers=headers,
    )
