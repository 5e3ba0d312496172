"""The provider's ASGI app: the edge's only way in (HTTP over the Unix socket).

Protocol (JSON both ways; the edge adds nothing but transport facts):

    GET  /health                                   {"ok", "version", "pid"}
    GET  /v1/workspaces/{ws}/config                edge-facing public config + allowed origins
    GET  /v1/workspaces/{ws}/widget-config         the public widget config (as the edge serves it)
    GET  /v1/workspaces/{ws}/actions               catalog of this workspace's available actions
    POST /v1/workspaces/{ws}/actions/{action}      {"params", "identity_token"?, "request_id", "client_ip"?}
    POST /v1/workspaces/{ws}/mcp                   one MCP JSON-RPC message (botctl.provider.mcp)
    POST /v1/workspaces/{ws}/confirmations/{id}    the visitor's answer to a change an MCP bot asked for
    GET  /v1/status                                {"connections_needing_reauth": [...], "refresh": {"runs",
                                                    "errors", "refreshed", "failed", "attempts": [{"connector",
                                                    "result", "count"}]}, "connections": [{"workspace",
                                                    "connector", "state"}], "audit": {"batches", "records",
                                                    "refused", "chain": "ok" | "broken", "problem"?, "head_seq",
                                                    "checkpoint_seq"}, "audit_sinks": [{"name", "backlog", ...}],
                                                    "alert_webhooks": [...], "answers": {"answered",
                                                    "busy_seconds"}}

Answers: `{"status": <http status for the visitor>, "body": <JSON body>, "headers"?: {...}}` so the
edge relays without interpreting. Errors carry the stable codes of daemon/botctld/error_codes.py (docs/design.md §8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from starlette.applications import Starlette  # noqa: TID253 - the provider is a daemon, not the CLI
from starlette.routing import Route  # noqa: TID253

from botctl.provider import endpoints, mcp
from botctl.provider.state import Provider

log = logging.getLogger("botctl.provider")

ROUTES = [
    Route("/health", endpoints.health),
    Route("/v1/workspaces/{ws}/chat", endpoints.chat, methods=["POST"]),
    Route("/v1/workspaces/{ws}/feedback", endpoints.feedback, methods=["POST"]),
    Route("/v1/status", endpoints.status),
    Route("/v1/workspaces/{ws}/config", endpoints.ws_config),
    Route("/v1/workspaces/{ws}/widget-config", endpoints.widget_config),
    Route("/v1/workspaces/{ws}/actions", endpoints.catalog),
    Route("/v1/workspaces/{ws}/actions/{action}", endpoints.run, methods=["POST"]),
    Route("/v1/workspaces/{ws}/mcp", mcp.mcp, methods=["POST"]),
    Route("/v1/workspaces/{ws}/confirmations", mcp.pending, methods=["POST"]),
    Route("/v1/workspaces/{ws}/confirmations/{cid}", mcp.confirmation, methods=["POST"]),
]


def create_app(home_path: str, **opts: Any) -> Starlette:
    """The provider for the home at `home_path` (options: see botctl.provider.state.Provider)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        provider = app.state.provider = Provider(home_path, **opts)
        from botctl import intents

        # Writes a killed provider (or CLI) left without an outcome: on record as `unknown` before serving.
        recovered = await intents.recover(provider.app)
        if recovered:
            log.warning(
                "recorded %d interrupted write(s) as outcome unknown (see `botctl audit --outcome unknown`)",
                recovered,
            )
        provider._refresh_task = asyncio.create_task(provider.refresh_loop())
        heartbeat = node_task = None
        if provider.app.node is not None:  # a PostgreSQL home: this node's heartbeat (botctl/nodes.py)
            from botctl.provider.heartbeat import Heartbeat

            heartbeat = provider.heartbeat = Heartbeat(provider.app, (provider.answers.connection,))
            await asyncio.to_thread(heartbeat.beat_now)

            async def after_beat() -> None:  # a lapsed node's pending writes: on record by a live node
                n = await intents.recover(provider.app)
                if n:
                    log.warning(
                        "recorded %d write(s) of a lapsed node or a dead process as outcome unknown", n
                    )

            node_task = asyncio.create_task(heartbeat.run(after_beat))
        # The knowledge embedding model, loaded before the first visitor's question rather than during it,
        # when some workspace has vectors to compare questions with (otherwise by the first question that
        # has: a workspace answered by FTS5 alone never loads it).
        from botctl.knowledge import embed, vectors

        if (
            embed.enabled()
            and vectors.any_current(provider.app.vault.conn)
            and not await asyncio.to_thread(embed.preload)
        ):
            log.warning("knowledge answers use FTS5 alone: the embedding model could not be loaded")
        log.info("provider ready (pid %d)", os.getpid())
        try:
            yield
        finally:
            for task in (provider._refresh_task, node_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if heartbeat is not None:
                heartbeat.close()
            await provider.aclose()

    return Starlette(routes=ROUTES, lifespan=lifespan)
