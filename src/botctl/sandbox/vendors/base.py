"""What every vendor module provides, and the endpoint wrapper they share.

A vendor is stateless: its data lives in `SandboxState.stores[name]`, built by `new_store`. The
wrapper checks the tenant (real vendors answer an unknown subdomain before looking at credentials),
then the credential, then the scope, then calls the handler with a `Ctx`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.wire import json_response, new_uuid

if TYPE_CHECKING:
    from botctl.sandbox.state import SandboxState

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CATCH_ALL = "catch_all"


@dataclass
class Ctx:
    request: Request
    state: SandboxState
    store: Any
    tenant: str | None
    principal: AccessToken | None = None

    @property
    def now(self) -> float:
        return self.state.clock()


Handler = Callable[[Ctx], Awaitable[Response]]


@dataclass(frozen=True)
class FaultReply:
    status: int
    headers: dict[str, str]
    body: bytes


class Vendor:
    name: ClassVar[str]
    # Path parameter naming the tenant ("subdomain", "shop", ...); None for global vendors.
    tenant_param: ClassVar[str | None] = None
    request_id_header: ClassVar[str] = "X-Request-Id"

    def __init__(self) -> None:
        self._routes: list[Route] | None = None

    # --- to implement ----------------------------------------------------------------------------

    def build_routes(self) -> list[Route]:
        raise NotImplementedError

    def new_store(self, state: SandboxState) -> Any:
        raise NotImplementedError

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        raise NotImplementedError

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        """None when the principal may use `scope`, else the vendor's 403."""
        assert ctx.principal is not None
        if "*" in ctx.principal.scopes or scope in ctx.principal.scopes:
            return None
        return json_response({"error": "forbidden", "missing_scope": scope}, 403)

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        """The vendor's body for an injected 429/5xx (Retry-After is added by the caller)."""
        raise NotImplementedError

    def not_found(self, request: Request) -> Response:
        return json_response({"error": "Not Found"}, 404)

    def tenant_not_found(self, request: Request, tenant: str) -> Response:
        return json_response({"error": "Not Found"}, 404)

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        return {}

    def new_request_id(self) -> str:
        return new_uuid()

    # --- shared ----------------------------------------------------------------------------------

    def mount_path(self) -> str:
        return f"/{self.name}/{{{self.tenant_param}}}" if self.tenant_param else f"/{self.name}"

    def routes(self) -> list[Route]:
        if self._routes is None:
            from botctl.sandbox.oauth.routes import routes_for

            self._routes = [
                *self.build_routes(),
                # The vendor's OAuth authorization server, where it has one (botctl/sandbox/oauth).
                *routes_for(self),
                Route("/{rest:path}", self._catch_all, methods=ALL_METHODS, name=CATCH_ALL),
            ]
        return self._routes

    def split(self, path: str) -> tuple[str | None, str] | None:
        """(tenant, vendor path) for a request path under this vendor's prefix, else None."""
        parts = path.split("/", 3 if self.tenant_param else 2)
        if len(parts) < 2 or parts[1] != self.name:
            return None
        if self.tenant_param:
            if len(parts) < 3 or not parts[2]:
                return None
            return parts[2], "/" + (parts[3] if len(parts) > 3 else "")
        return None, "/" + (parts[2] if len(parts) > 2 else "")

    def route_template(self, method: str, path: str) -> str:
        for route in self.routes():
            if route.name == CATCH_ALL:
                continue
            if route.path_regex.match(path) and (route.methods is None or method in route.methods):
                return f"{method} {route.path_format}"
        return f"{method} (unmatched)"

    def route(self, path: str, handler: Handler, methods: list[str], *, scope: str | None = None) -> Route:
        return Route(path, self.endpoint(handler, scope=scope), methods=methods)

    def endpoint(
        self, handler: Handler, *, scope: str | None = None, auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            state: SandboxState = request.app.state.sandbox
            tenant: str | None = None
            if self.tenant_param:
                tenant = request.path_params[self.tenant_param]
                if tenant != state.tenant:
                    return self.tenant_not_found(request, tenant)
            ctx = Ctx(request=request, state=state, store=state.stores[self.name], tenant=tenant)
            if auth:
                result = self.authenticate(ctx)
                if isinstance(result, Response):
                    return result
                ctx.principal = result
                if scope is not None:
                    denied = self.require(ctx, scope)
                    if denied is not None:
                        return denied
            return await handler(ctx)

        run.__name__ = getattr(handler, "__name__", "endpoint")
        return run

    async def _catch_all(self, request: Request) -> Response:
        state: SandboxState = request.app.state.sandbox
        if self.tenant_param and request.path_params.get(self.tenant_param) != state.tenant:
            return self.tenant_not_found(request, request.path_params[self.tenant_param])
        return self.not_found(request)

    def vendor_path(self, request: Request) -> str:
        """The path as the real vendor would see it (without the sandbox prefix and tenant)."""
        split = self.split(request.url.path)
        return split[1] if split else request.url.path


def page_of(items: list[Any], start: int, size: int) -> tuple[list[Any], bool]:
    """items[start:start+size] and whether more follow."""
    start = max(0, start)
    chunk = items[start : start + size]
    return chunk, start + size < len(items)


def email_eq(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.strip().lower() == b.strip().lower()  # type: ignore[union-attr]


_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-")
