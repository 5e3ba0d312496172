"""The edge's two layers around its endpoints.

* `Envelope` (outermost, every request): request id (a client's own only in the documented shape), the
  visitor's address (botctld.clientip), and before any other work the metrics-listener split and the
  per-IP bucket; afterwards the X-Request-Id header, the JSON error shape for 404/405/500/503, metrics.
* `WorkspaceGuard` (on each `/v1/workspaces/{ws}/...` route): the workspace must exist, and a browser's
  Origin must be one of its allowed origins; CORS headers for the endpoint in `request.state.cors`;
  preflights (`OPTIONS`) answered here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from botctld.state import Edge, ProviderDown, err, new_request_id

log = logging.getLogger("botctld")
REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{8,36}")
UNLIMITED = ("/healthz", "/readyz")  # load balancers' probes: never refused for a rate
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id, MCP-Protocol-Version"


class WorkspaceGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        request = Request(scope)
        edge: Edge = request.app.state.edge
        refusal, cors = await _cors_check(edge, request, scope["path_params"]["ws"], request.state.rid)
        if refusal is None and scope["method"] == "OPTIONS":
            if cors:
                cors.update(
                    {
                        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                        "Access-Control-Max-Age": "600",
                    }
                )
            refusal = Response(status_code=204, headers=cors)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope["state"]["cors"] = cors
        await self.app(scope, receive, send)


async def _cors_check(
    edge: Edge, request: Request, ws: str, rid: str
) -> tuple[Response | None, dict[str, str]]:
    """(refusal or None, CORS headers to add). Only the workspace's allowed origins get CORS headers."""
    origin = request.headers.get("origin")
    try:
        status, body = await edge.ws_config(ws)
    except (ProviderDown, KeyError):
        return err(
            "provider_unavailable", "The service is starting or unavailable; try again shortly.", rid
        ), {}
    if status == 404:
        return err("unknown_workspace", "No such workspace.", rid), {}
    if origin is None:
        return None, {}  # not a browser request (server-to-server, curl): CORS does not apply
    if origin not in body.get("origins", []):
        return err("origin_not_allowed", "This site is not allowed to use this workspace.", rid), {}
    return None, {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Access-Control-Expose-Headers": "X-Request-Id, Retry-After",
    }


class Envelope:
    def __init__(self, app: Any, edge: Edge) -> None:
        self.app = app
        self.edge = edge
        self.state = app.state

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers_in = scope.get("headers") or []
        incoming = dict(headers_in).get(b"x-request-id", b"").decode("latin-1")
        rid = (
            incoming if REQUEST_ID.fullmatch(incoming) else new_request_id()
        )  # nothing else reaches the audit
        peer = (scope.get("client") or (None,))[0]
        forwarded = [v.decode("latin-1") for k, v in headers_in if k == b"x-forwarded-for"]
        client_ip = self.edge.addresses.resolve(peer, forwarded)
        scope.setdefault("state", {}).update(rid=rid, client_ip=client_ip, cors={})
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500, "sent": False}
        refusal = self.screen(scope, rid, client_ip)
        if refusal is not None:
            await refusal(scope, receive, send)
            self.edge.metrics.request(
                _route_template(scope), refusal.status_code, time.perf_counter() - started
            )
            return

        async def send_wrapped(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["sent"] = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                if message["status"] in (404, 405) and not _has_json(headers):
                    status_holder["rewrite"] = message["status"]
                    return
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and "rewrite" in status_holder:
                code = status_holder.pop("rewrite")
                body = json.dumps(
                    {
                        "error": {
                            "code": "not_found" if code == 404 else "method_not_allowed",
                            "message": "No such route." if code == 404 else "Method not allowed.",
                        },
                        "request_id": rid,
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": code,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"x-request-id", rid.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                message = {"type": "http.response.body", "body": body}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        except Exception as exc:
            down = isinstance(exc, ProviderDown)
            if not down:
                log.exception("request %s failed", rid)
            if not status_holder["sent"]:
                code, status = ("provider_unavailable", 503) if down else ("internal_error", 500)
                status_holder["status"] = status
                message = (
                    "The service is restarting or unavailable; try again shortly."
                    if down
                    else "Something went wrong on our side."
                )
                body = json.dumps({"error": {"code": code, "message": message}, "request_id": rid}).encode()
                extra = [(b"retry-after", b"1")] if down else []
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": extra
                        + [
                            (b"content-type", b"application/json"),
                            (b"x-request-id", rid.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            self.edge.metrics.request(
                _route_template(scope), status_holder["status"], time.perf_counter() - started
            )

    def screen(self, scope, rid: str, client_ip: str) -> Response | None:  # type: ignore[no-untyped-def]
        """Before any other work: the metrics listener serves only /metrics (and only it does), and every
        other request pays the per-IP bucket first — unknown workspaces, wrong origins and preflights too."""
        path = scope.get("path", "")
        local_port = (scope.get("server") or (None, None))[1]
        on_metrics = self.edge.metrics_port is not None and local_port == self.edge.metrics_port
        if on_metrics != (path == "/metrics"):
            return err("not_found", "No such route.", rid, {"X-Request-Id": rid})
        if on_metrics or path in UNLIMITED:
            return None
        wait = self.edge.ip_limits.take(client_ip)
        if wait:
            origin = dict(scope.get("headers") or []).get(b"origin")
            cors = self.edge.cached_cors(path, origin.decode("latin-1") if origin else None)
            return err(
                "rate_limited",
                "Too many requests; slow down.",
                rid,
                {**cors, "Retry-After": str(max(1, int(wait + 0.999))), "X-Request-Id": rid},
            )
        return None


def _has_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in headers)


def _route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
