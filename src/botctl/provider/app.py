"""The provider's ASGI app: the edge's only way in (HTTP over the Unix socket).

Protocol (JSON both ways; the edge adds nothing but transport facts):

    GET  /health                                   {"ok", "version", "pid"}
    GET  /v1/workspaces/{ws}/config                edge-facing public config + allowed origins
    GET  /v1/workspaces/{ws}/widget-config         the public widget config (as the edge serves it)
    GET  /v1/workspaces/{ws}/actions               catalog of this workspace's available actions
    POST /v1/workspaces/{ws}/actions/{action}      {"params", "identity_token"?, "request_id", "client_ip"?}
    GET  /v1/status                                {"connections_needing_reauth": [...], "refresh": {...},
                                                    "audit": {"batches", "records", "refused", "chain": "ok" |
                                                    "broken", "problem"?, "head_seq", "checkpoint_seq"}}

Answers: `{"status": <http status for the visitor>, "body": <JSON body>, "headers"?: {...}}` so the
edge relays without interpreting. Errors carry the stable codes of DESIGN.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from starlette.applications import Starlette  # noqa: TID253 - the provider is a daemon, not the CLI
from starlette.requests import Request  # noqa: TID253
from starlette.responses import JSONResponse  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl import __version__
from botctl.connectors.base import ActionError, Visitor
from botctl.errors import AuditChainBroken
from botctld import error_codes

log = logging.getLogger("botctl.provider")

PUBLIC_MESSAGE = {
    "invalid_identity": "The identity token was refused.",
    "not_found": "Nothing with that id was found for you.",
    "audit_unavailable": "Actions are paused until the operator checks the service; try again later.",
    "internal_error": "Something went wrong on our side.",
}
GREETING = "Hi! How can we help?"


def request_id_of(data: dict[str, Any]) -> str:
    """The edge's request id when it has the documented shape; otherwise a new one (the edge is not trusted
    to write into the audit log: it may be compromised)."""
    from botctl.actions import REQUEST_ID, new_request_id

    rid = data.get("request_id")
    return rid if isinstance(rid, str) and REQUEST_ID.fullmatch(rid) else new_request_id()


def client_ip_of(data: dict[str, Any]) -> str | None:
    """The visitor's address as the edge resolved it, if it is an IP address (kept in the audit record)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(data.get("client_ip") or "")))
    except ValueError:
        return None


def error(code: str, message: str, request_id: str, *, retry_after: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": error_codes.status(code),
                           "body": {"error": {"code": code, "message": message}, "request_id": request_id}}
    if retry_after is not None:
        out["headers"] = {"Retry-After": str(max(1, int(retry_after + 0.999)))}
    return out


class Provider:
    """State of one provider process: the App (vault + group-committed audit), counters, refresh loop."""

    def __init__(self, home_path: str, *, refresh_interval: float = 30.0, refresh_margin: float = 300.0) -> None:
        from botctl.app import App
        from botctl.home import Home

        self.app = App(Home.resolve(home_path), actor={"type": "system"}, create=False)
        self.app.vault  # noqa: B018 - open now: a wrong or missing master key fails the start, not a request
        os.environ.pop("BOTCTL_MASTER_KEY", None)  # read once: nothing this process starts inherits it
        self.app.use_group_commit()
        import httpx

        # Keep-alive connections to the vendors, shared by every action (credentials are injected per
        # request by each action's own VendorTransport wrapped around this pool).
        self.app.vendor_pool = httpx.AsyncHTTPTransport(retries=0, limits=httpx.Limits(max_connections=200,
                                                                                       max_keepalive_connections=50))
        self.started = time.time()
        self.refresh_interval = refresh_interval
        self.refresh_margin = refresh_margin
        self.refresh_stats: dict[str, Any] = {"runs": 0, "refreshed": 0, "failed": 0, "last_run": None}
        self._refresh_task: asyncio.Task | None = None

    # -- lookups (fresh per request: the CLI may change the vault while the daemon runs) ----------

    def workspace(self, name: str):  # -> Workspace | None
        from botctl import workspaces

        return workspaces.find(self.app.vault.conn, name)

    def available(self, ws) -> list[dict[str, Any]]:  # noqa: ANN001
        from botctl import connections
        from botctl.connectors import registry

        if not ws.actions_allowed:
            return []
        conns = {c.connector: c for c in connections.list_all(self.app.vault.conn, ws) if c.status == "active"}
        out = []
        for c in registry.all_connectors():
            if c.name not in conns:
                continue
            for a in c.actions:
                out.append({"name": f"{c.name}.{a.name}", "connector": c.name, "vendor": c.vendor,
                            "category": c.category, "description": a.description,
                            "customer_specific": a.customer_specific, "params": a.params})
        return out

    def widget_config(self, ws) -> dict[str, Any]:  # noqa: ANN001
        actions = self.available(ws)
        return {
            "workspace": ws.name,
            "display_name": ws.display_name or ws.name,
            "greeting": GREETING,
            "actions": {
                "anonymous": [a["name"] for a in actions if not a["customer_specific"]],
                "signed_in": [a["name"] for a in actions if a["customer_specific"]],
            },
            "features": {"chat": True, "actions": ws.actions_allowed},
        }

    # -- identity -----------------------------------------------------------------------------------

    async def verify(self, ws, token: str | None) -> tuple[Visitor | None, str | None]:  # noqa: ANN001
        """(visitor, None) for a good token, (None, None) without one, (None, reason) for a bad one."""
        if token is None:
            return None, None
        from botctl.identity import IdentityError, Verifier

        try:
            # Awaited: a JWKS fetch runs on its own thread, never on this loop (other tenants).
            return await Verifier(self.app, ws).averify(token), None
        except IdentityError as exc:
            return None, exc.reason

    # -- refresh loop -------------------------------------------------------------------------------

    async def refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self.refresh_once()

    async def refresh_once(self) -> None:
        try:
            from botctl import oauth
        except ImportError:
            return
        fn = getattr(oauth, "refresh_due", None)
        if fn is None:
            return
        self.refresh_stats["runs"] += 1
        self.refresh_stats["last_run"] = time.time()
        try:
            results = await fn(self.app, margin_s=self.refresh_margin)
        except Exception:
            log.exception("refresh run failed")
            self.refresh_stats["failed"] += 1
            return
        for r in results or []:
            outcome = getattr(r, "outcome", None)
            if outcome == "refreshed":
                self.refresh_stats["refreshed"] += 1
            elif outcome in ("needs_reauth", "failed"):
                self.refresh_stats["failed"] += 1

    def close(self) -> None:
        self.app.close()

    async def aclose(self) -> None:
        if self.app.vendor_pool is not None:
            await self.app.vendor_pool.aclose()
        self.close()


def create_app(home_path: str, **opts: Any) -> Starlette:
    provider: Provider | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):  # noqa: ANN202
        nonlocal provider
        provider = Provider(home_path, **opts)
        from botctl import intents

        # Writes a killed provider (or CLI) left without an outcome: on record as `unknown` before serving.
        recovered = await intents.recover(provider.app)
        if recovered:
            log.warning("recorded %d interrupted write(s) as outcome unknown (see `botctl audit --outcome unknown`)",
                        recovered)
        provider._refresh_task = asyncio.create_task(provider.refresh_loop())
        log.info("provider ready (pid %d)", os.getpid())
        try:
            yield
        finally:
            provider._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await provider._refresh_task
            await provider.aclose()

    def p() -> Provider:
        assert provider is not None
        return provider

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "version": __version__, "pid": os.getpid(),
                             "uptime_s": round(time.time() - p().started, 1)})

    async def status(_: Request) -> JSONResponse:
        from botctl import audit, connections

        reauth = [{"workspace": c.workspace, "connector": c.connector, "reason": c.status_reason}
                  for c in connections.list_all(p().app.vault.conn) if c.status != "active"]
        committer = p().app._committer
        # The chain as a writer would find it now (cheap: head vs checkpoint, no walk), plus what the
        # committer refused since the last break: {"chain": "ok" | "broken", "problem"?, ...}.
        vault = p().app.vault
        try:
            chain = audit.head_state(p().app.home, vault.audit_key(), vault.conn)
        except Exception as exc:  # status must answer even when audit.db cannot be read
            chain = {"chain": "unknown", "problem": type(exc).__name__}
        chain.pop("head_hash", None)
        chain.pop("checkpoint_hash", None)
        return JSONResponse({"connections_needing_reauth": reauth, "refresh": p().refresh_stats,
                             "audit": {"batches": committer.batches, "records": committer.records,
                                       "refused": committer.refused, **chain}})

    async def ws_config(request: Request) -> JSONResponse:
        ws = p().workspace(request.path_params["ws"])
        if ws is None:
            return JSONResponse(error("unknown_workspace", "No such workspace.", ""))
        return JSONResponse({"status": 200, "body": {**p().widget_config(ws), "origins": list(ws.origins)}})

    async def widget_config(request: Request) -> JSONResponse:
        ws = p().workspace(request.path_params["ws"])
        if ws is None:
            return JSONResponse(error("unknown_workspace", "No such workspace.", ""))
        return JSONResponse({"status": 200, "body": p().widget_config(ws)})

    async def catalog(request: Request) -> JSONResponse:
        ws = p().workspace(request.path_params["ws"])
        if ws is None:
            return JSONResponse(error("unknown_workspace", "No such workspace.", ""))
        return JSONResponse({"status": 200, "body": {"workspace": ws.name, "actions": p().available(ws)}})

    async def run(request: Request) -> JSONResponse:
        from botctl.actions import run_action, visitor_actor

        data = await request.json()
        rid = request_id_of(data)
        ws_name, action = request.path_params["ws"], request.path_params["action"]
        prov = p()
        ws = prov.workspace(ws_name)
        # A token that fails is a refusal (never a silent downgrade to anonymous); run_action audits it,
        # like an unknown workspace, as one action.run record.
        visitor, bad = await prov.verify(ws, data.get("identity_token")) if ws is not None else (None, None)
        try:
            result = await run_action(prov.app, ws_name, action, visitor=visitor, params=data.get("params"),
                                      request_id=rid, actor=visitor_actor(visitor), identity_error=bad,
                                      client_ip=client_ip_of(data))
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
        from botctl import knowledge

        data = await request.json()
        rid = request_id_of(data)
        prov = p()
        ws = prov.workspace(request.path_params["ws"])
        if ws is None:
            return JSONResponse(error("unknown_workspace", "No such workspace.", rid))
        visitor, bad = await prov.verify(ws, data.get("identity_token"))
        if bad is not None:
            await prov.app.aaudit("chat.refused", workspace=ws.name, actor={"type": "visitor"}, outcome="denied",
                                  reason="invalid_identity", request_id=rid,
                                  detail={"identity_reason": bad, "client_ip": client_ip_of(data)})
            return JSONResponse(error("invalid_identity", PUBLIC_MESSAGE["invalid_identity"], rid))
        actions = prov.available(ws)
        result = await knowledge.answer_async(prov.app.vault.conn, ws, str(data.get("message", "")),
                                              available_actions=actions)
        for s in result.get("suggested_actions") or []:
            # The widget shows customer-specific actions as "sign in to use this" to anonymous visitors.
            s["needs_sign_in"] = bool(s.get("customer_specific")) and visitor is None
        body = {"answer": result["answer"], "grounded": result["grounded"], "citations": result["citations"],
                "suggested_actions": result.get("suggested_actions") or [],
                "conversation_id": data.get("conversation_id"), "request_id": rid}
        return JSONResponse({"status": 200, "body": body})

    routes = [
        Route("/health", health),
        Route("/v1/workspaces/{ws}/chat", chat, methods=["POST"]),
        Route("/v1/status", status),
        Route("/v1/workspaces/{ws}/config", ws_config),
        Route("/v1/workspaces/{ws}/widget-config", widget_config),
        Route("/v1/workspaces/{ws}/actions", catalog),
        Route("/v1/workspaces/{ws}/actions/{action}", run, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
