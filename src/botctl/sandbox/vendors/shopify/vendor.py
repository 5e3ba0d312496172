"""The Shopify vendor: its tokens, OAuth profile and hooks, seed plan, errors, authentication and routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, FaultReply, Vendor
from botctl.sandbox.wire import dumps, json_response

from .data import (
    DESCRIBED_API_VERSION,
    OAUTH,
    ORDER_STATES,
    PRODUCTS,
    TOKEN,
    TOKEN_LIMITED,
    TOKEN_LIMITED_SCOPES,
    TOKEN_SCOPES,
    ShopifyStore,
)
from .handlers import access_scopes, address_record, graphql_endpoint, rest_shop

if TYPE_CHECKING:
    from botctl.sandbox.oauth.routes import OAuthRoutes
    from botctl.sandbox.oauth.server import VendorAuthorizationServer


class Shopify(Vendor):
    name = "shopify"
    tenant_param = "shop"

    oauth_profile = OAUTH
    connect_config = {"shop": seed.TENANT}
    throttles_in_body = True  # a throttled GraphQL query is HTTP 200 with errors[].extensions.code THROTTLED

    def static_credentials(self) -> list[StaticCredential]:
        return [
            StaticCredential(TOKEN, TOKEN_SCOPES, tenant=True),
            StaticCredential(TOKEN_LIMITED, TOKEN_LIMITED_SCOPES, tenant=True),
        ]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "shopify_header",
            "kind": "admin_api_access_token",
            "access_token": TOKEN,
            "scopes": list(TOKEN_SCOPES),
            "api_version": DESCRIBED_API_VERSION,
            "graphql_path": f"/admin/api/{DESCRIBED_API_VERSION}/graphql.json",
            "limited": {"access_token": TOKEN_LIMITED, "scopes": list(TOKEN_LIMITED_SCOPES)},
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        owned = seed.owned(customer)
        return {
            "customer_id": f"gid://shopify/Customer/{seed.shopify_customer_id(customer)}",
            "orders": [f"gid://shopify/Order/{seed.shopify_order_id(customer, i)}" for i in owned],
            "order_names": [seed.shopify_order_name(customer, i) for i in owned],
        }

    def seed_account(self) -> dict[str, Any]:
        return {"shop": f"{seed.TENANT}.myshopify.com"}

    # -- OAuth: the signed callback, the app's uninstall ------------------------------------------------

    def oauth_describe(self, root: str) -> dict[str, Any]:
        return {"uninstall_url": root + OAUTH.extra_paths["uninstall"]}

    def oauth_redirect(self, server: VendorAuthorizationServer, location: str) -> str:
        """Shopify's callback carries `code`, `hmac`, `host`, `shop`, `state`, `timestamp`; `hmac` is
        HMAC-SHA256 (hex) with the client secret over the other parameters, sorted, `k=v` joined by `&`."""
        parts = urlsplit(location)
        params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "hmac"]
        if not any(k == "code" for k, _ in params):
            return location
        tenant = server.hub.tenant_for(self.name)
        host = base64.urlsafe_b64encode(f"admin.shopify.com/store/{tenant}".encode())
        params += [
            ("shop", f"{tenant}.myshopify.com"),
            ("host", host.decode().rstrip("=")),
            ("timestamp", str(int(server.now()))),
        ]
        request = server.current_request
        client = server.query_client(request.payload.client_id) if request is not None else None
        secret = (client.spec.client_secret or "") if client is not None else ""
        message = "&".join(f"{k}={v}" for k, v in sorted(params))
        digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        return urlunsplit(parts._replace(query=urlencode([*params, ("hmac", digest)])))

    def oauth_routes(self, routes: OAuthRoutes) -> list[Route]:
        async def uninstall(ctx: Ctx) -> Response:
            """`DELETE /admin/api_permissions/current.json`: the app uninstalls itself from the shop,
            which revokes every token the app holds for it."""
            record = ctx.principal
            assert record is not None
            client_id = record.subject.get("client_id")
            if client_id:
                ctx.state.oauth.revoke_client(self.name, client_id)
            ctx.state.tokens.revoke(record.token, self.name)
            ctx.state.stats.record_oauth_event(self.name, "uninstall")
            return json_response({})

        return [Route(OAUTH.extra_paths["uninstall"], self.endpoint(uninstall), methods=["DELETE"])]

    def new_store(self, state: SandboxState) -> ShopifyStore:
        store = ShopifyStore()
        t0 = state.anchor - 300 * DAY
        for n, c in enumerate(seed.CUSTOMERS):
            cid = seed.shopify_customer_id(c)
            store.customers[cid] = {
                "id": cid,
                "email": c.email,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "phone": None,
                "created_at": t0 + n * DAY,
                "updated_at": t0 + n * DAY,
                "tags": [],
                "note": None,
                "state": "ENABLED",
                "verified_email": True,
                "address": address_record(c.first_name, c.last_name, n),
            }
        for n, (c, i) in enumerate(seed.sequence()):
            oid = seed.shopify_order_id(c, i)
            created = state.anchor - (40 - 5 * n) * DAY + 10 * 3600
            financial, fulfillment, cancelled = ORDER_STATES[n]
            lines = [
                {
                    "id": oid * 10 + k,
                    "title": PRODUCTS[(n + k) % 4][0],
                    "sku": PRODUCTS[(n + k) % 4][1],
                    "price": PRODUCTS[(n + k) % 4][2],
                    "vendor": PRODUCTS[(n + k) % 4][3],
                    "quantity": 1 + (n + k) % 2,
                    "variant_title": None,
                }
                for k in range(1 + n % 2)
            ]
            fulfillments = []
            if fulfillment in ("FULFILLED", "PARTIALLY_FULFILLED", "IN_PROGRESS"):
                fulfillments.append(
                    {
                        "id": oid + 4000000000,
                        "status": "SUCCESS",
                        "created_at": created + 2 * DAY,
                        "display_status": "DELIVERED" if fulfillment == "FULFILLED" else "IN_TRANSIT",
                        "tracking": [
                            {
                                "company": "UPS",
                                "number": f"1Z999AA1{oid % 100000000:08d}",
                                "url": f"https://www.ups.com/track?tracknum=1Z999AA1{oid % 100000000:08d}",
                            }
                        ],
                    }
                )
            store.orders[oid] = {
                "id": oid,
                "name": seed.shopify_order_name(c, i),
                "email": c.email,
                "customer_id": seed.shopify_customer_id(c),
                "created_at": created,
                "processed_at": created,
                "updated_at": created + 3 * DAY,
                "cancelled_at": created + DAY if cancelled else None,
                "cancel_reason": "CUSTOMER" if cancelled else None,
                "closed_at": created + 5 * DAY if fulfillment == "FULFILLED" or cancelled else None,
                "financial": financial,
                "fulfillment": fulfillment,
                "lines": lines,
                "shipping": 500,
                "tax": 0,
                "fulfillments": fulfillments,
                "tags": [],
                "note": None,
                "address": store.customers[seed.shopify_customer_id(c)]["address"],
            }
        return store

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        headers = {"content-type": "application/json; charset=utf-8"}
        if kind == "throttled":
            body = {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": {
                    "cost": {
                        "requestedQueryCost": 1,
                        "actualQueryCost": None,
                        "throttleStatus": {
                            "maximumAvailable": 1000.0,
                            "currentlyAvailable": 0.0,
                            "restoreRate": 50.0,
                        },
                    }
                },
            }
            return FaultReply(200, headers, dumps(body))
        messages = {
            429: "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service.",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Unavailable Shop",
        }
        return FaultReply(status, headers, dumps({"errors": messages[status]}))

    def not_found(self, request: Request) -> Response:
        return json_response({"errors": "Not Found"}, 404)

    def tenant_not_found(self, request: Request, tenant: str) -> Response:
        return json_response({"errors": "Not Found"}, 404)

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        token = ctx.request.headers.get("x-shopify-access-token")
        check = ctx.state.tokens.check(self.name, token)
        if check.ok and check.token is not None and check.token.tenant in (None, ctx.tenant):
            return check.token
        return json_response(
            {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, 401
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/admin/oauth/access_scopes.json", access_scopes, ["GET"]),
            self.route("/admin/api/{version}/shop.json", rest_shop, ["GET"]),
            self.route("/admin/api/{version}/graphql.json", graphql_endpoint, ["POST"]),
        ]


VENDOR = Shopify()
