"""What every vendor module provides, and the endpoint wrapper they share.

A vendor is stateless: its data lives in `SandboxState.stores[name]`, built by `new_store`. The
wrapper checks the tenant (real vendors answer an unknown subdomain before looking at credentials),
then the credential, then the scope, then calls the handler with a `Ctx`.

A vendor also declares everything the rest of the sandbox needs to know about it — its static
credentials (`static_credentials`, `describe_credentials`), its seed plan (`seed_plan`,
`seed_account`), how a botctl connection reaches its seeded tenant (`connect_config`,
`connect_credential`) and its OAuth authorization server (`oauth_profile` and the `oauth_*`
hooks) — so `credentials.py`, `seed.py` and `oauth/` loop over the vendors they are given and name
none. The vendor does not mount its OAuth server: `app.vendor_routes` puts it beside the vendor's API.
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
    from botctl.sandbox.credentials import StaticCredential
    from botctl.sandbox.oauth.profiles import Profile
    from botctl.sandbox.oauth.routes import OAuthRoutes
    from botctl.sandbox.oauth.server import VendorAuthorizationServer
    from botctl.sandbox.seed import Customer
    from botctl.sandbox.state import SandboxState

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CATCH_ALL = "catch_all"


@dataclass
class Ctx:
    request: Request
    state: SandboxState
    store: Any
    tenant: str | None
    vendor: Vendor  # the vendor whose endpoint this is (its handlers need not import their own module)
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
    # Where the API's base URL sits below the vendor's prefix (e.g. "/v2"): `base_path`.
    api_path: ClassVar[str] = ""
    # An injected "throttled" fault is answered in the body (HTTP 200, GraphQL THROTTLED) rather
    # than as a 429.
    throttles_in_body: ClassVar[bool] = False
    # The vendor's OAuth authorization server (botctl/sandbox/oauth), None when it has none here.
    oauth_profile: ClassVar[Profile | None] = None
    # The settings a botctl connection gives to reach the seeded tenant, e.g. {"subdomain": "acme"}.
    connect_config: ClassVar[dict[str, str]] = {}

    # --- declarations (credentials, seed, connecting, OAuth) ----------------------------------------

    def static_credentials(self) -> list[StaticCredential]:
        """The credentials the sandbox accepts from start-up (and after a reset)."""
        raise NotImplementedError

    def describe_credentials(self) -> dict[str, Any]:
        """Its block of `GET /_sandbox/credentials` (base_path, base_url and the tenant are added)."""
        raise NotImplementedError

    def connect_credential(
        self, described: dict[str, Any], *, limited: bool = False
    ) -> dict[str, str] | None:
        """The credential fields a botctl connection stores (`api_key`, `api_secret`, `access_token`),
        from this vendor's block of `/_sandbox/credentials`; `limited`: its narrower credential, if any."""
        block = described.get("limited") if limited else described
        if not isinstance(block, dict):
            return None
        for field in ("access_token", "api_key"):
            if block.get(field):
                return {field: block[field]}
        return None

    def seed_plan(self, customer: Customer) -> dict[str, Any]:
        """The ids of one customer's objects at this vendor (`GET /_sandbox/seed`)."""
        raise NotImplementedError

    def seed_account(self) -> dict[str, Any]:
        """The seeded account's ids at this vendor (`_meta.accounts` of `GET /_sandbox/seed`)."""
        raise NotImplementedError

    def oauth_routes(self, routes: OAuthRoutes) -> list[Route]:
        """OAuth routes of this vendor's own, besides the standard ones (token management...)."""
        return []

    def oauth_describe(self, root: str) -> dict[str, Any]:
        """Extra entries of this vendor's `oauth` block in `/_sandbox/credentials`."""
        return {}

    def oauth_token_subject(self, server: VendorAuthorizationServer, client: Any) -> dict[str, Any]:
        """Extra subject fields of an access token this vendor's server issues."""
        return {}

    def oauth_token_extras(self, origin: str, now: float) -> dict[str, Any]:
        """Extra fields of this vendor's token response."""
        return {}

    def oauth_redirect(self, server: VendorAuthorizationServer, location: str) -> str:
        """The authorization response's redirect as the vendor sends it (extra parameters, a signature)."""
        return location

    def oauth_error(self, body: dict[str, Any], grant_type: str | None) -> dict[str, Any]:
        """A token-endpoint error body as the vendor words it."""
        return body

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

    def prefix(self, tenant: str) -> str:
        """The sandbox path standing in for the vendor's host, e.g. /zendesk/acme."""
        return f"/{self.name}/{tenant}" if self.tenant_param else f"/{self.name}"

    def base_path(self, tenant: str) -> str:
        """The sandbox path standing in for the API's base URL, e.g. /calcom/v2."""
        return self.prefix(tenant) + self.api_path

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
            ctx = Ctx(request=request, state=state, store=state.stores[self.name], tenant=tenant, vendor=self)
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

    async def catch_all(self, request: Request) -> Response:
        """Any path under the vendor's prefix that no route of its own matches: the vendor's 404."""
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
