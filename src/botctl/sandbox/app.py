"""The sandbox app: the eight vendors under their prefixes, and `/_sandbox/*` test controls.

URL layout (each prefix stands in for the vendor's base URL; what follows is the vendor's real path):

    /calendly                   https://api.calendly.com
    /calcom/v2                  https://api.cal.com/v2
    /zendesk/{subdomain}        https://{subdomain}.zendesk.com
    /freshdesk/{domain}         https://{domain}.freshdesk.com
    /hubspot                    https://api.hubapi.com
    /stripe                     https://api.stripe.com
    /shopify/{shop}             https://{shop}.myshopify.com
    /woocommerce/{store}        the WordPress site root of store {store}
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette  # noqa: TID253
from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Mount, Route  # noqa: TID253
from starlette.types import ASGIApp  # noqa: TID253

from . import credentials, seed
from .middleware import SandboxMiddleware
from .state import FAULT_KINDS, SandboxState
from .vendors import all_vendors
from .vendors.base import ALL_METHODS, CATCH_ALL, Vendor
from .wire import json_response, read_json


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _bad(message: str) -> Response:
    return json_response({"error": message}, 400)


async def index(request: Request) -> Response:
    described = credentials.describe(str(request.base_url), vendors=_state(request).vendors.values())
    return json_response(
        {
            "sandbox": "botctl",
            "tenant": _state(request).tenant,
            "vendors": {name: described[name]["base_url"] for name in _state(request).vendors},
            "controls": [
                "GET /_sandbox/credentials",
                "GET /_sandbox/seed",
                "GET /_sandbox/stats",
                "POST /_sandbox/stats/reset",
                "GET|POST|DELETE /_sandbox/faults",
                "GET|POST /_sandbox/config",
                "POST /_sandbox/tokens",
                "GET /_sandbox/tokens",
                "POST /_sandbox/tokens/revoke",
                "POST /_sandbox/oauth/expire",
                "POST /_sandbox/device/approve",
                "POST /_sandbox/reset",
            ],
        }
    )


async def get_credentials(request: Request) -> Response:
    state = _state(request)
    return json_response(
        credentials.describe(
            str(request.base_url), vendors=state.vendors.values(), device_flow=state.config.device_flow
        )
    )


async def get_seed(request: Request) -> Response:
    return json_response(seed.plan(_state(request).vendors.values()))


async def get_stats(request: Request) -> Response:
    return json_response(_state(request).stats.snapshot())


async def reset_stats(request: Request) -> Response:
    _state(request).stats.reset()
    return json_response({"ok": True})


async def faults(request: Request) -> Response:
    state = _state(request)
    if request.method == "GET":
        return json_response({"faults": state.faults.list()})
    if request.method == "DELETE":
        state.faults.clear()
        return json_response({"ok": True})
    body, ok = await read_json(request)
    if not ok or not isinstance(body, dict):
        return _bad("body must be a JSON object")
    vendor = body.get("vendor")
    kind = str(body.get("kind", ""))
    if vendor not in state.vendors:
        return _bad(f"vendor must be one of {sorted(state.vendors)}")
    if kind not in FAULT_KINDS:
        return _bad(f"kind must be one of {list(FAULT_KINDS)}")
    count = body.get("count", 1)
    retry_after = body.get("retry_after")
    hang_seconds = body.get("hang_seconds", 60.0)
    if not isinstance(count, int) or count < 1:
        return _bad("count must be a positive integer")
    if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
        return _bad("retry_after must be a non-negative number or null")
    if not isinstance(hang_seconds, int | float) or hang_seconds < 0:
        return _bad("hang_seconds must be a non-negative number")
    for key in ("path", "method"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return _bad(f"{key} must be a string")
    fault = state.faults.add(
        vendor=vendor,
        kind=kind,
        count=count,
        retry_after=retry_after,
        path=body.get("path"),
        method=body.get("method"),
        hang_seconds=float(hang_seconds),
    )
    return json_response({"fault": fault.__dict__}, 201)


async def config(request: Request) -> Response:
    state = _state(request)
    if request.method == "POST":
        body, ok = await read_json(request)
        if not ok or not isinstance(body, dict):
            return _bad("body must be a JSON object")
        try:
            state.config.update(body, oauth_vendors=state.oauth_vendor_names)
        except ValueError as exc:
            return _bad(str(exc))
    return json_response(state.config.__dict__)


async def issue_token(request: Request) -> Response:
    """Issue a bearer token for a vendor, as the OAuth server will (scopes, ttl seconds, tenant)."""
    state = _state(request)
    body, ok = await read_json(request)
    if not ok or not isinstance(body, dict) or body.get("vendor") not in state.vendors:
        return _bad("body must be {vendor, scopes, ttl?, tenant?}")
    scopes = body.get("scopes", [])
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return _bad("scopes must be a list of strings")
    ttl = body.get("ttl")
    if ttl is not None and not isinstance(ttl, int | float):
        return _bad("ttl must be a number or null")
    vendor = state.vendors[body["vendor"]]
    tenant = body.get("tenant", state.tenant if vendor.tenant_param else None)
    record = state.tokens.issue_access_token(vendor.name, scopes, ttl, tenant=tenant)
    grant = body.get("grant_type")
    if isinstance(grant, str):
        state.stats.record_grant(vendor.name, grant)
    return json_response(
        {
            "access_token": record.token,
            "vendor": record.vendor,
            "scopes": sorted(record.scopes),
            "expires_in": record.expires_in(state.clock()),
            "tenant": record.tenant,
        },
        201,
    )


async def list_tokens(request: Request) -> Response:
    """Every token this sandbox has issued (access tokens, OAuth refresh tokens, authorization codes),
    live or not: what a leak scan looks for in a client's files, logs and output."""
    state = _state(request)
    out: dict[str, list[dict[str, str]]] = {"access_tokens": [], "refresh_tokens": [], "codes": []}
    for record in state.tokens.issued():
        out["access_tokens"].append({"vendor": record.vendor, "token": record.token})
    for name, store in state.oauth.stores.items():
        out["refresh_tokens"] += [{"vendor": name, "token": t} for t in list(store.refresh_tokens)]
        out["codes"] += [{"vendor": name, "token": c} for c in list(store.codes)]
    return json_response(out)


async def revoke_token(request: Request) -> Response:
    body, ok = await read_json(request)
    if not ok or not isinstance(body, dict) or not isinstance(body.get("token"), str):
        return _bad("body must be {token, vendor?}")
    revoked = _state(request).tokens.revoke(body["token"], body.get("vendor"))
    return json_response({"revoked": revoked})


async def expire_oauth_tokens(request: Request) -> Response:
    """Force-expire issued access tokens (all vendors, one vendor, or one token) so a client has to
    refresh; `"refresh_tokens": true` expires the OAuth refresh tokens as well."""
    state = _state(request)
    body, ok = await read_json(request)
    body = {} if ok and body is None else body
    if not ok or not isinstance(body, dict):
        return _bad("body must be {vendor?, token?, refresh_tokens?}")
    vendor, token = body.get("vendor"), body.get("token")
    if vendor is not None and vendor not in state.vendors:
        return _bad(f"vendor must be one of {sorted(state.vendors)}")
    if token is not None and not isinstance(token, str):
        return _bad("token must be a string")
    expired = state.tokens.expire(vendor, token)
    refresh_expired = 0
    if body.get("refresh_tokens"):
        now = state.clock()
        for name, store in state.oauth.stores.items():
            if vendor is not None and name != vendor:
                continue
            for record in store.refresh_tokens.values():
                if (token is None or record.token == token) and record.status == "active":
                    record.expires_at = now - 1
                    refresh_expired += 1
    return json_response({"expired": expired, "refresh_tokens_expired": refresh_expired})


async def approve_device(request: Request) -> Response:
    """Approve (or, with `"deny": true`, deny) a pending RFC 8628 user code, as the user would on
    the verification page."""
    state = _state(request)
    body, ok = await read_json(request)
    if not ok or not isinstance(body, dict) or not isinstance(body.get("user_code"), str):
        return _bad("body must be {user_code, deny?}")
    deny = body.get("deny", False)
    if not isinstance(deny, bool):
        return _bad("deny must be a boolean")
    found = state.oauth.find_device(body["user_code"])
    if found is None:
        return json_response({"error": "unknown user_code"}, 404)
    vendor, credential = found
    problem = state.oauth.decide_device(credential, not deny)
    if problem:
        return json_response({"error": problem, "vendor": vendor, "status": credential.status}, 409)
    return json_response({"vendor": vendor, "status": credential.status})


async def well_known_metadata(request: Request) -> Response:
    """RFC 8414 §3.1's location for an issuer with a path: /.well-known/oauth-authorization-server/{path}.
    The same document is at {issuer}/.well-known/oauth-authorization-server."""
    state = _state(request)
    path = "/" + request.path_params["issuer_path"].strip("/")
    for server in state.oauth.servers.values():
        if server.prefix == path:
            return json_response(server.metadata(str(request.base_url).rstrip("/")))
    return json_response({"error": "not_found"}, 404)


async def reset(request: Request) -> Response:
    _state(request).reset()
    return json_response({"ok": True})


class SandboxApp(Starlette):
    """Starlette with the sandbox middleware outermost, even outside ServerErrorMiddleware: the
    "reset" fault needs the server's own `send` to find the connection it drops."""

    def build_middleware_stack(self) -> ASGIApp:
        return SandboxMiddleware(super().build_middleware_stack(), self.state.sandbox)


def vendor_routes(vendor: Vendor) -> list[Route]:
    """What is mounted under a vendor's prefix: its API, its OAuth authorization server where it has one
    (composed here: the vendor declares a profile and hooks, it does not mount the server itself),
    and a catch-all answering the vendor's own 404."""
    from .oauth.routes import routes_for  # authlib: only when a sandbox is actually built

    return [
        *vendor.build_routes(),
        *routes_for(vendor),
        Route("/{rest:path}", vendor.catch_all, methods=ALL_METHODS, name=CATCH_ALL),
    ]


def create_app(
    *,
    token_ttl: int | None = None,
    auto_approve: bool = False,
    device_flow: Iterable[str] | None = None,
) -> Starlette:
    """A new sandbox with its own state.

    `token_ttl`: lifetime (s) of issued access tokens (`/_sandbox/tokens` and the OAuth servers;
    None: OAuth tokens get each vendor's real lifetime, `/_sandbox/tokens` ones never expire).
    `auto_approve`: the OAuth authorization endpoints approve at once (302 to the redirect URI)
    instead of showing the consent page. `device_flow`: OAuth vendors whose sandbox server offers
    the RFC 8628 device flow (a test affordance; none of the real vendors has it; None: the vendors
    whose profile sets `device_flow_default`).
    Both are the start-up (and reset) values of the runtime config (`POST /_sandbox/config`).
    """
    state = SandboxState(
        vendors=all_vendors(), token_ttl=token_ttl, auto_approve=auto_approve, device_flow=device_flow
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        # A fresh event per run: an app served again must not inherit a set (or foreign-loop) event.
        state.shutting_down = asyncio.Event()
        try:
            yield
        finally:
            state.shutting_down.set()

    routes: list[Any] = [
        Route("/", index),
        Route("/_sandbox/credentials", get_credentials),
        Route("/_sandbox/seed", get_seed),
        Route("/_sandbox/stats", get_stats),
        Route("/_sandbox/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/config", config, methods=["GET", "POST"]),
        Route("/_sandbox/tokens", issue_token, methods=["POST"]),
        Route("/_sandbox/tokens", list_tokens, methods=["GET"]),
        Route("/_sandbox/tokens/revoke", revoke_token, methods=["POST"]),
        Route("/_sandbox/oauth/expire", expire_oauth_tokens, methods=["POST"]),
        Route("/_sandbox/device/approve", approve_device, methods=["POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/.well-known/oauth-authorization-server/{issuer_path:path}", well_known_metadata),
    ]
    for vendor in state.vendors.values():
        state.routes[vendor.name] = vendor_routes(vendor)
        routes.append(Mount(vendor.mount_path(), routes=state.routes[vendor.name]))
    app = SandboxApp(routes=routes, lifespan=lifespan)
    app.state.sandbox = state
    return app
