"""The edge's ASGI app (Starlette). Everything secret-bearing happens in the provider."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botctld import __version__
from botctld.clientip import ClientAddress
from botctld.metrics import Metrics
from botctld.openapi import spec
from botctld.provider_client import ProviderClient, ProviderError
from botctld.ratelimit import TokenBuckets

log = logging.getLogger("botctld")
STATIC = Path(__file__).parent / "static"
MAX_BODY = 64 * 1024
MAX_TOKEN = 8 * 1024
MAX_DEPTH = 32  # JSON nesting: the provider walks params recursively (schema checks, audit scrubbing)
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id"
ACTION_NAME = re.compile(r"[a-z0-9_]{1,40}\.[a-z0-9_]{1,60}")
REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{8,36}")
UNLIMITED = ("/healthz", "/readyz")  # load balancers' probes: never refused for a rate


def _rid() -> str:
    return "req_" + uuid.uuid4().hex[:16]


def seg(value: str) -> str:
    """A path parameter as one percent-encoded segment of a provider URL (`?`, `#`, `%`, `..`, control
    characters and non-ASCII reach the provider as the same string, never as URL syntax)."""
    return {".": "%2E", "..": "%2E%2E"}.get(value) or quote(value, safe="")


def err(code: str, message: str, status: int, rid: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}, "request_id": rid}, status_code=status,
                        headers=headers)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")  # 1e999: not representable, and not JSON once re-encoded
    return value


def _depth(value: Any) -> int:
    """How deeply containers nest in a parsed JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


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


class BodyTooLarge(Exception):
    pass


class ProviderDown(Exception):
    """The provider did not answer (restarting, crashed, overloaded): 503, never a 500."""


class Edge:
    def __init__(self, socket_path: str, *, ip_rate: float = 20.0, ip_burst: int = 60, visitor_rate: float = 5.0,
                 visitor_burst: int = 20, config_ttl: float = 5.0, provider_timeout: float = 30.0,
                 trust_proxy: int = 0, trust_proxy_cidrs: tuple[str, ...] = (), metrics_port: int | None = None) -> None:
        self.socket_path = socket_path
        self.ip_limits = TokenBuckets(ip_rate, ip_burst)
        self.visitor_limits = TokenBuckets(visitor_rate, visitor_burst)
        self.config_ttl = config_ttl
        self.addresses = ClientAddress(trust_proxy, trust_proxy_cidrs)
        self.metrics_port = metrics_port  # /metrics is served only on this (loopback) listener
        self.metrics = Metrics()
        self._configs: dict[str, tuple[float, int, dict[str, Any]]] = {}
        self.client = ProviderClient(socket_path, timeout=provider_timeout, connect_timeout=2.0)
        self.widget_js = (STATIC / "widget.js").read_bytes()
        self.widget_etag = '"' + hashlib.sha256(self.widget_js).hexdigest()[:16] + '"'
        # Compressed once (55 KB → ~16 KB); its own ETag, as a different representation (RFC 9110 §8.8.3).
        self.widget_gz = gzip.compress(self.widget_js, 9, mtime=0)
        self.widget_gz_etag = self.widget_etag[:-1] + '-gz"'

    async def provider(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The provider's {status, body} for this request. `path` carries every parameter through seg():
        the client writes it into the request line as it is."""
        try:
            status, answer = await self.client.request(method, path, payload)
        except ProviderError as exc:
            raise ProviderDown(str(exc)) from None
        if status != 200 or not isinstance(answer, dict):
            raise ProviderDown(f"HTTP {status}" if status != 200 else "bad answer")
        return answer

    async def ws_config(self, ws: str) -> tuple[int, dict[str, Any]]:
        hit = self._configs.get(ws)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1], hit[2]
        answer = await self.provider("GET", f"/v1/workspaces/{seg(ws)}/config")
        self._configs[ws] = (now + self.config_ttl, answer["status"], answer["body"])
        if len(self._configs) > 10_000:
            self._configs.clear()
        return answer["status"], answer["body"]

    def client_ip(self, request: Request) -> str:
        return request.state.client_ip


def create_app(socket_path: str, **opts: Any) -> Starlette:
    edge = Edge(socket_path, **opts)

    async def cors_check(request: Request, ws: str, rid: str) -> tuple[Response | None, dict[str, str]]:
        """(refusal or None, CORS headers to add). Only the workspace's allowed origins get CORS headers."""
        origin = request.headers.get("origin")
        try:
            status, body = await edge.ws_config(ws)
        except (ProviderDown, KeyError):
            return err("provider_unavailable", "The service is starting or unavailable; try again shortly.", 503,
                       rid), {}
        if status == 404:
            return err("unknown_workspace", "No such workspace.", 404, rid), {}
        if origin is None:
            return None, {}  # not a browser request (server-to-server, curl): CORS does not apply
        if origin not in body.get("origins", []):
            return err("origin_not_allowed", "This site is not allowed to use this workspace.", 403, rid), {}
        return None, {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                      "Access-Control-Expose-Headers": "X-Request-Id, Retry-After"}

    async def preflight(request: Request) -> Response:
        rid = request.state.rid
        refusal, headers = await cors_check(request, request.path_params["ws"], rid)
        if refusal is not None:
            return refusal
        if not headers:
            return Response(status_code=204)
        headers.update({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS, "Access-Control-Max-Age": "600"})
        return Response(status_code=204, headers=headers)

    async def relay(answer: dict[str, Any], cors: dict[str, str]) -> JSONResponse:
        headers = {**cors, **(answer.get("headers") or {})}
        return JSONResponse(answer["body"], status_code=answer["status"], headers=headers)

    async def widget_config(request: Request) -> Response:
        rid, ws = request.state.rid, request.path_params["ws"]
        refusal, cors = await guarded(request, ws, rid)
        if refusal is not None:
            return refusal
        return await relay(await edge.provider("GET", f"/v1/workspaces/{seg(ws)}/widget-config"), cors)

    async def actions(request: Request) -> Response:
        rid, ws = request.state.rid, request.path_params["ws"]
        refusal, cors = await guarded(request, ws, rid)
        if refusal is not None:
            return refusal
        return await relay(await edge.provider("GET", f"/v1/workspaces/{seg(ws)}/actions"), cors)

    async def guarded(request: Request, ws: str, rid: str) -> tuple[Response | None, dict[str, str]]:
        """CORS for the workspace's origins (the per-IP limit came first, in the Envelope)."""
        return await cors_check(request, ws, rid)

    async def json_object(request: Request, rid: str, cors: dict[str, str], fields: set[str], shape: str
                          ) -> tuple[dict[str, Any] | None, Response | None]:
        """The body as a JSON object with only `fields`, or the stable 4xx that explains what is wrong."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return None, err("unsupported_media_type", "Send the body as application/json.", 415, rid, cors)
        try:
            raw = await read_body(request)
        except BodyTooLarge:
            return None, err("payload_too_large", f"The request body is over {MAX_BODY // 1024} KiB.", 413, rid, cors)
        except ClientDisconnect:  # gone, or too slow to send the body (protocol.BODY_TIMEOUT): nobody reads this
            return None, err("invalid_request", "The request body did not arrive.", 400, rid, cors)
        try:
            body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite) if raw else {}
            json.dumps(body, ensure_ascii=False, allow_nan=False).encode()  # lone surrogates ("\ud800") fail here
        except (ValueError, RecursionError):
            return None, err("invalid_request", "The body is not valid JSON.", 400, rid, cors)
        if _depth(body) > MAX_DEPTH:
            return None, err("invalid_request", f"The body is nested over {MAX_DEPTH} levels deep.", 400, rid, cors)
        if not isinstance(body, dict) or set(body) - fields:
            return None, err("invalid_request", f"The body must be {shape} with no other fields.", 400, rid, cors)
        return body, None

    def identity_token(request: Request) -> str | None:
        """The raw identity token (forwarded as data: the provider verifies it and audits any refusal).

        Several Authorization fields are joined as one list value (RFC 9110 §5.3): never a valid token, so
        an ambiguous credential is refused and audited rather than one of them picked."""
        values = request.headers.getlist("authorization")
        if not values:
            return None
        auth = ", ".join(values)
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else auth
        return token[: MAX_TOKEN + 1]  # the provider refuses anything over the cap

    async def run_action(request: Request) -> Response:
        rid, ws, action = request.state.rid, request.path_params["ws"], request.path_params["action"]
        refusal, cors = await guarded(request, ws, rid)
        if refusal is not None:
            return refusal
        body, bad = await json_object(request, rid, cors, {"params"}, '{"params": {...}}')
        if bad is not None:
            return bad
        params = body.get("params", {})  # type: ignore[union-attr]
        if not isinstance(params, dict):
            return err("invalid_params", "params must be a JSON object.", 422, rid, cors)
        token = identity_token(request)
        if token is not None:
            wait = edge.visitor_limits.take("v:" + hashlib.sha256(token.encode()).hexdigest())
            if wait:
                return err("rate_limited", "Too many requests; slow down.", 429, rid,
                           {**cors, "Retry-After": str(max(1, int(wait + 0.999)))})
        answer = await edge.provider("POST", f"/v1/workspaces/{seg(ws)}/actions/{seg(action)}",
                                     {"params": params, "identity_token": token, "request_id": rid,
                                      "client_ip": edge.client_ip(request)})
        outcome = "ok" if answer["status"] == 200 else answer["body"].get("error", {}).get("code", "error")
        known = ACTION_NAME.fullmatch(action) and outcome not in ("unknown_action", "unknown_workspace")
        edge.metrics.action(action if known else "unknown", outcome)  # invented names add no series
        return await relay(answer, cors)

    async def chat(request: Request) -> Response:
        rid, ws = request.state.rid, request.path_params["ws"]
        refusal, cors = await guarded(request, ws, rid)
        if refusal is not None:
            return refusal
        body, bad = await json_object(request, rid, cors, {"message", "conversation_id"},
                                      '{"message": "...", "conversation_id"?: "..."}')
        if bad is not None:
            return bad
        message, conv = body.get("message"), body.get("conversation_id")  # type: ignore[union-attr]
        if not isinstance(message, str) or not message.strip() or len(message) > 2000:
            return err("invalid_request", "message must be a non-empty string of at most 2000 characters.", 400,
                       rid, cors)
        if conv is not None and (not isinstance(conv, str) or len(conv) > 64):
            return err("invalid_request", "conversation_id must be a string of at most 64 characters.", 400, rid, cors)
        answer = await edge.provider("POST", f"/v1/workspaces/{seg(ws)}/chat",
                                     {"message": message, "conversation_id": conv,
                                      "identity_token": identity_token(request), "request_id": rid,
                                      "client_ip": edge.client_ip(request)})
        return await relay(answer, cors)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__})

    async def readyz(request: Request) -> Response:
        try:
            answer = await edge.provider("GET", "/health")
            return JSONResponse({"ok": True, "provider": {"version": answer.get("version")}})
        except ProviderDown:
            return err("provider_unavailable", "The provider is not reachable.", 503, request.state.rid)

    async def metrics(_: Request) -> Response:
        try:
            status = await edge.provider("GET", "/v1/status")
        except ProviderDown:
            status = None
        return Response(edge.metrics.render(status), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(_: Request) -> Response:
        return JSONResponse(spec())

    async def widget(request: Request) -> Response:
        # Public, credential-free: `*` lets sites pin it with integrity=... crossorigin="anonymous".
        gz = _accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = edge.widget_gz_etag if gz else edge.widget_etag
        headers = {"Cache-Control": "public, max-age=300", "ETag": etag, "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "cross-origin",
                   "Access-Control-Allow-Origin": "*"}
        if etag in request.headers.get("if-none-match", "").replace(" ", "").split(","):
            return Response(status_code=304, headers=headers)
        if gz:
            headers["Content-Encoding"] = "gzip"
        return Response(edge.widget_gz if gz else edge.widget_js, media_type="application/javascript; charset=utf-8",
                        headers=headers)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise BodyTooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        Route("/widget.js", widget),
        Route("/v1/workspaces/{ws}/widget-config", widget_config, methods=["GET"]),
        Route("/v1/workspaces/{ws}/widget-config", preflight, methods=["OPTIONS"]),
        Route("/v1/workspaces/{ws}/actions", actions, methods=["GET"]),
        Route("/v1/workspaces/{ws}/actions", preflight, methods=["OPTIONS"]),
        Route("/v1/workspaces/{ws}/chat", chat, methods=["POST"]),
        Route("/v1/workspaces/{ws}/chat", preflight, methods=["OPTIONS"]),
        Route("/v1/workspaces/{ws}/actions/{action}", run_action, methods=["POST"]),
        Route("/v1/workspaces/{ws}/actions/{action}", preflight, methods=["OPTIONS"]),
    ]

    async def provider_down(request: Request, _exc: Exception) -> Response:
        return err("provider_unavailable", "The service is restarting or unavailable; try again shortly.", 503,
                   request.state.rid, {"Retry-After": "1"})

    async def internal_error(request: Request, _exc: Exception) -> Response:
        return err("internal_error", "Something went wrong on our side.", 500, request.state.rid)

    # Inside Starlette, an exception escaping a handler is answered by its ServerErrorMiddleware (plain text
    # 500) before the Envelope could see it: both kinds get the error envelope here.
    app = Starlette(routes=routes, exception_handlers={ProviderDown: provider_down, Exception: internal_error})
    app.state.edge = edge
    return Envelope(app, edge)


class Envelope:
    """Outermost ASGI layer: request id on every response, metrics, the stable error shape for 404/405/500."""

    def __init__(self, app: Starlette, edge: Edge) -> None:
        self.app = app
        self.edge = edge
        self.state = app.state

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers_in = scope.get("headers") or []
        incoming = dict(headers_in).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if REQUEST_ID.fullmatch(incoming) else _rid()  # anything else never reaches the audit
        peer = (scope.get("client") or (None,))[0]
        forwarded = [v.decode("latin-1") for k, v in headers_in if k == b"x-forwarded-for"]
        client_ip = self.edge.addresses.resolve(peer, forwarded)
        scope.setdefault("state", {}).update(rid=rid, client_ip=client_ip)
        started = time.perf_counter()
        status_holder = {"status": 500, "sent": False}
        refusal = self.screen(scope, rid, client_ip)
        if refusal is not None:
            status_holder["status"] = refusal.status_code
            await refusal(scope, receive, send)
            self.edge.metrics.request(_route_template(scope), refusal.status_code, time.perf_counter() - started)
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
                body = json.dumps({"error": {"code": "not_found" if code == 404 else "method_not_allowed",
                                             "message": "No such route." if code == 404 else "Method not allowed."},
                                   "request_id": rid}).encode()
                await send({"type": "http.response.start", "status": code,
                            "headers": [(b"content-type", b"application/json"), (b"x-request-id", rid.encode()),
                                        (b"content-length", str(len(body)).encode())]})
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
                message = ("The service is restarting or unavailable; try again shortly." if down
                           else "Something went wrong on our side.")
                body = json.dumps({"error": {"code": code, "message": message}, "request_id": rid}).encode()
                extra = [(b"retry-after", b"1")] if down else []
                await send({"type": "http.response.start", "status": status, "headers": extra + [
                    (b"content-type", b"application/json"), (b"x-request-id", rid.encode()),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
        finally:
            route = _route_template(scope)
            self.edge.metrics.request(route, status_holder["status"], time.perf_counter() - started)


    def screen(self, scope, rid: str, client_ip: str) -> Response | None:  # type: ignore[no-untyped-def]
        """Before any other work: the metrics listener serves only /metrics (and only it does), and every
        other request pays the per-IP bucket first — unknown workspaces, wrong origins and preflights too."""
        path = scope.get("path", "")
        local_port = (scope.get("server") or (None, None))[1]
        on_metrics = self.edge.metrics_port is not None and local_port == self.edge.metrics_port
        if on_metrics != (path == "/metrics"):
            return err("not_found", "No such route.", 404, rid, {"X-Request-Id": rid})
        if on_metrics or path in UNLIMITED:
            return None
        wait = self.edge.ip_limits.take(client_ip)
        if wait:
            return err("rate_limited", "Too many requests; slow down.", 429, rid,
                       {"Retry-After": str(max(1, int(wait + 0.999))), "X-Request-Id": rid})
        return None


def _has_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in headers)


def _route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def build_server(socket_path: str, host: str, port: int, *, metrics_host: str = "127.0.0.1",
                 metrics_port: int | None = None, **opts: Any) -> tuple[Any, list[Any]]:
    """The uvicorn server and its bound listening sockets (the visitors' and, with `metrics_port`, the
    metrics one), with everything it imports already loaded: after this the edge can confine itself
    (no more binds) and still serve (see botctld.confine)."""
    import socket

    import uvicorn

    from botctld.protocol import EdgeProtocol

    os.umask(0o077)
    sockets = []
    if metrics_port is not None:
        family = socket.AF_INET6 if ":" in metrics_host else socket.AF_INET
        msock = socket.socket(family, socket.SOCK_STREAM)
        msock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        msock.bind((metrics_host, metrics_port))
        msock.set_inheritable(True)
        metrics_port = msock.getsockname()[1]
        sockets.append(msock)
    app = create_app(socket_path, metrics_port=metrics_port, **opts)
    # EdgeProtocol: httptools with caps on the request head and deadlines on reading the request.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=10, http=EdgeProtocol, limit_concurrency=1000,
                            timeout_keep_alive=5, server_header=False)
    config.load()
    config.get_loop_factory()  # imports the event loop implementation now
    return uvicorn.Server(config), [config.bind_socket(), *sockets]

