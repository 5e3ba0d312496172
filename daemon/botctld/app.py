"""The edge's ASGI app (Starlette): routes, the two middleware layers, and the server that runs them.

Everything secret-bearing happens in the provider; the edge holds nothing and (botctld.confine) can
reach nothing but the provider's socket. Endpoints: botctld.endpoints; layers: botctld.middleware;
state: botctld.state.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botctld import endpoints, mcp
from botctld.middleware import Envelope, WorkspaceGuard
from botctld.state import Edge, ProviderDown, err

WS = "/v1/workspaces/{ws}"


def _guarded(path: str, endpoint: Any, method: str) -> Route:
    """A workspace route: its method plus OPTIONS (preflights), behind the WorkspaceGuard."""
    return Route(WS + path, endpoint, methods=[method, "OPTIONS"], middleware=[Middleware(WorkspaceGuard)])


ROUTES = [
    Route("/healthz", endpoints.healthz),
    Route("/readyz", endpoints.readyz),
    Route("/metrics", endpoints.metrics),
    Route("/openapi.json", endpoints.openapi),
    Route("/widget.js", endpoints.widget),
    _guarded("/widget-config", endpoints.widget_config, "GET"),
    _guarded("/actions", endpoints.actions, "GET"),
    _guarded("/chat", endpoints.chat, "POST"),
    _guarded("/feedback", endpoints.feedback, "POST"),
    _guarded("/actions/{action}", endpoints.run_action, "POST"),
    # MCP (botctld.mcp): the transport, the visitor's confirmations, the RFC 9728 metadata.
    _guarded("/mcp", mcp.endpoint, "POST"),
    _guarded("/confirmations", mcp.pending, "GET"),
    Route(
        WS + "/confirmations/{cid}",
        mcp.confirmation,
        methods=["GET", "POST", "OPTIONS"],
        middleware=[Middleware(WorkspaceGuard)],
    ),
    Route("/.well-known/oauth-protected-resource" + WS + "/mcp", mcp.protected_resource),
]


async def _provider_down(request: Request, _exc: Exception) -> Response:
    return err(
        "provider_unavailable",
        "The service is restarting or unavailable; try again shortly.",
        request.state.rid,
        {"Retry-After": "1"},
    )


async def _internal_error(request: Request, _exc: Exception) -> Response:
    return err("internal_error", "Something went wrong on our side.", request.state.rid)


def create_app(socket_path: str, **opts: Any) -> Envelope:
    """The edge for the provider listening on `socket_path` (options: see botctld.state.Edge)."""
    # Inside Starlette, an exception escaping a handler is answered by its ServerErrorMiddleware (plain text
    # 500) before the Envelope could see it: both kinds get the error envelope here.
    app = Starlette(
        routes=ROUTES, exception_handlers={ProviderDown: _provider_down, Exception: _internal_error}
    )
    app.state.edge = Edge(socket_path, **opts)
    return Envelope(app, app.state.edge)


def build_server(
    socket_path: str,
    host: str,
    port: int,
    *,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    **opts: Any,
) -> tuple[Any, list[Any]]:
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
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
        http=EdgeProtocol,
        limit_concurrency=1000,
        timeout_keep_alive=5,
        server_header=False,
    )
    config.load()
    config.get_loop_factory()  # imports the event loop implementation now
    return uvicorn.Server(config), [config.bind_socket(), *sockets]
