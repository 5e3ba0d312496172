"""Shopify Admin API (docs/vendors.md §7): GraphQL `POST /admin/api/{version}/graphql.json` over a
subset of the Admin schema (shop, orders, order, customers, customer, node/nodes), plus REST
`GET /admin/oauth/access_scopes.json` and `GET /admin/api/{version}/shop.json`.

Queries are parsed and validated for real (see `botctl.sandbox.graphql`), so any query a client
sends is answered only from fields this subset has; anything else is a GraphQL validation error,
as Shopify would report it. Every response carries `extensions.cost` with a leaky-bucket
`throttleStatus`; a query costing more than is available gets the "Throttled" error. Costs follow
Shopify's rules roughly (object 1, connection 2 + n × node cost).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import graphql as gql
from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.wire import decode_cursor, dumps, encode_cursor, iso, json_response, parse_time, read_json

from .base import Ctx, FaultReply, Vendor

if TYPE_CHECKING:
    from botctl.sandbox.oauth.routes import OAuthRoutes
    from botctl.sandbox.oauth.server import VendorAuthorizationServer

MAX_PAGE = 250
VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
# read_orders alone shows only the last 60 days of orders (docs/vendors.md §7.1).
RECENT_ORDER_WINDOW = 60 * DAY

PRODUCTS = (
    ("Analytical Engine Poster", "AE-POSTER", 2500, "Acme Prints"),
    ("Difference Engine Mug", "DE-MUG", 1400, "Acme Home"),
    ("Punch Card Notebook", "PC-NOTE", 900, "Acme Paper"),
    ("Compiler Tee", "COMP-TEE", 2200, "Acme Apparel"),
)
ORDER_STATES = (  # (financial, fulfillment, cancelled)
    ("PAID", "FULFILLED", False),
    ("PAID", "UNFULFILLED", False),
    ("PENDING", "UNFULFILLED", False),
    ("PAID", "PARTIALLY_FULFILLED", False),
    ("REFUNDED", "UNFULFILLED", True),
    ("PAID", "FULFILLED", False),
    ("PAID", "IN_PROGRESS", False),
)


@dataclass
class ShopifyStore:
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    # access token -> (points available, last refill time)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
TOKEN_SCOPES = ("read_orders", "read_all_orders", "read_customers", "read_fulfillments")
TOKEN_LIMITED_SCOPES = ("read_orders",)
TOKEN = "shpat_0123456789abcdef0123456789abcdef"
TOKEN_LIMITED = "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"
DESCRIBED_API_VERSION = "2026-07"

OAUTH = Profile(
    vendor="shopify",
    title="Shopify",
    authorize_path="/admin/oauth/authorize",
    token_path="/admin/oauth/access_token",
    revoke_path="/admin/oauth/revoke",
    revoke_is_extension=True,
    token_auth_methods=("client_secret_post",),
    revocation_auth_methods=("client_secret_post",),
    scopes=(*TOKEN_SCOPES, "write_orders", "read_returns"),
    access_ttl=3600,
    refresh_ttl=90 * DAY,  # refresh_token_expires_in: 7776000
    confidential=ClientSpec("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "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", "botctl"),
    scope_separator=",",
    token_type=None,  # Shopify's token response has no token_type
    rotation_grace=True,
    implicit_code_grant_type=True,
    access_token_prefix="shpat_",
    access_token_hex_bytes=16,
    extra_paths={"uninstall": "/admin/api_permissions/current.json"},
    offline_unless_expiring=True,
    refresh_expiry_in_response=True,
)


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
        params += [("shop", f"{tenant}.myshopify.com"), ("host", host.decode().rstrip("=")),
                   ("timestamp", str(int(server.now())))]
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
                "address": _address(c.first_name, c.last_name, n),
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


def _address(first: str, last: str, n: int) -> dict[str, Any]:
    return {
        "first_name": first,
        "last_name": last,
        "address1": f"{10 + n} Analytical Row",
        "address2": None,
        "city": "London",
        "province": None,
        "province_code": None,
        "zip": f"N{n + 1} 1AA",
        "country": "United Kingdom",
        "country_code": "GB",
        "phone": None,
        "company": None,
    }


def _version_ok(ctx: Ctx) -> Response | None:
    if not VERSION_RE.match(ctx.request.path_params["version"]):
        return json_response({"errors": "Not Found"}, 404)
    return None


def _version_header(ctx: Ctx, response: Response) -> Response:
    response.headers["X-Shopify-API-Version"] = ctx.request.path_params["version"]
    return response


# --- REST ----------------------------------------------------------------------------------------


async def access_scopes(ctx: Ctx) -> Response:
    assert ctx.principal is not None
    scopes = sorted(ctx.principal.scopes - {"*"})
    return json_response(
        {"access_scopes": [{"handle": s} for s in scopes]}, headers={"X-Shopify-Shop-Api-Call-Limit": "1/40"}
    )


def _shop_rest(ctx: Ctx) -> dict[str, Any]:
    return {
        "id": 60000000001,
        "name": "Acme",
        "email": seed.ACCOUNT_EMAIL,
        "domain": "shop.acme.example",
        "myshopify_domain": f"{ctx.tenant}.myshopify.com",
        "plan_name": "basic",
        "plan_display_name": "Basic",
        "currency": "USD",
        "iana_timezone": "Europe/London",
        "customer_email": seed.ACCOUNT_EMAIL,
        "created_at": iso(ctx.state.anchor - 900 * DAY),
        "country_code": "GB",
    }


async def rest_shop(ctx: Ctx) -> Response:
    bad = _version_ok(ctx)
    if bad:
        return bad
    response = json_response({"shop": _shop_rest(ctx)}, headers={"X-Shopify-Shop-Api-Call-Limit": "1/40"})
    return _version_header(ctx, response)


# --- GraphQL schema ------------------------------------------------------------------------------


@dataclass
class QueryCtx:
    ctx: Ctx
    scopes: frozenset[str]

    @property
    def store(self) -> ShopifyStore:
        return self.ctx.store


def _gid(kind: str, oid: int) -> str:
    return f"gid://shopify/{kind}/{oid}"


def _parse_gid(value: Any, kind: str | None = None) -> tuple[str, int] | None:
    m = re.fullmatch(r"gid://shopify/(\w+)/(\d+)", str(value))
    if not m or (kind and m.group(1) != kind):
        return None
    return m.group(1), int(m.group(2))


def _money(cents: int) -> dict[str, Any]:
    return {"__typename": "MoneyV2", "amount": str(cents / 100), "currencyCode": "USD"}


def _bag(cents: int) -> dict[str, Any]:
    return {"__typename": "MoneyBag", "shopMoney": _money(cents), "presentmentMoney": _money(cents)}


def _require(q: QueryCtx, field_name: str, scope: str) -> None:
    if "*" in q.scopes or scope in q.scopes or scope.replace("read_", "write_") in q.scopes:
        return
    raise gql.FieldError(
        f"Access denied for {field_name} field. Required access: `{scope}` access scope.",
        {
            "code": "ACCESS_DENIED",
            "documentation": "https://shopify.dev/api/usage/access-scopes",
            "requiredAccess": f"`{scope}` access scope.",
        },
    )


def _visible_orders(q: QueryCtx) -> list[dict[str, Any]]:
    orders = list(q.store.orders.values())
    if not ({"read_all_orders", "*"} & q.scopes):
        orders = [o for o in orders if o["created_at"] >= q.ctx.now - RECENT_ORDER_WINDOW]
    return orders


def _mail(a: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "__typename": "MailingAddress",
        "name": f"{a['first_name']} {a['last_name']}",
        "firstName": a["first_name"],
        "lastName": a["last_name"],
        "address1": a["address1"],
        "address2": a["address2"],
        "city": a["city"],
        "province": a["province"],
        "provinceCode": a["province_code"],
        "zip": a["zip"],
        "country": a["country"],
        "countryCodeV2": a["country_code"],
        "phone": a["phone"],
        "company": a["company"],
        "formatted": [a["address1"], f"{a['city']} {a['zip']}", a["country"]],
    }


def _order_node(o: dict[str, Any]) -> dict[str, Any]:
    subtotal = sum(li["price"] * li["quantity"] for li in o["lines"])
    total = subtotal + o["shipping"] + o["tax"]
    refunded = total if o["financial"] == "REFUNDED" else 0
    return {
        "__typename": "Order",
        "_raw": o,
        "id": _gid("Order", o["id"]),
        "legacyResourceId": str(o["id"]),
        "name": o["name"],
        "email": o["email"],
        "phone": None,
        "createdAt": iso(o["created_at"]),
        "updatedAt": iso(o["updated_at"]),
        "processedAt": iso(o["processed_at"]),
        "cancelledAt": iso(o["cancelled_at"]) if o["cancelled_at"] else None,
        "cancelReason": o["cancel_reason"],
        "closed": o["closed_at"] is not None,
        "closedAt": iso(o["closed_at"]) if o["closed_at"] else None,
        "confirmed": True,
        "test": False,
        "note": o["note"],
        "tags": list(o["tags"]),
        "displayFinancialStatus": o["financial"],
        "displayFulfillmentStatus": o["fulfillment"],
        "currencyCode": "USD",
        "presentmentCurrencyCode": "USD",
        "customerLocale": "en",
        "totalPriceSet": _bag(total),
        "currentTotalPriceSet": _bag(total - refunded),
        "subtotalPriceSet": _bag(subtotal),
        "totalShippingPriceSet": _bag(o["shipping"]),
        "totalTaxSet": _bag(o["tax"]),
        "totalRefundedSet": _bag(refunded),
        "shippingAddress": _mail(o["address"]),
        "billingAddress": _mail(o["address"]),
        "statusPageUrl": f"https://shop.acme.example/orders/{o['id']:x}/authenticate",
        "returnStatus": "NO_RETURN",
    }


def _customer_node(c: dict[str, Any], q: QueryCtx) -> dict[str, Any]:
    orders = [o for o in q.store.orders.values() if o["customer_id"] == c["id"]]
    spent = sum(
        sum(li["price"] * li["quantity"] for li in o["lines"]) + o["shipping"]
        for o in orders
        if o["financial"] == "PAID"
    )
    return {
        "__typename": "Customer",
        "_raw": c,
        "id": _gid("Customer", c["id"]),
        "legacyResourceId": str(c["id"]),
        "email": c["email"],
        "firstName": c["first_name"],
        "lastName": c["last_name"],
        "displayName": f"{c['first_name']} {c['last_name']}",
        "phone": c["phone"],
        "numberOfOrders": str(len(orders)),
        "amountSpent": _money(spent),
        "createdAt": iso(c["created_at"]),
        "updatedAt": iso(c["updated_at"]),
        "state": c["state"],
        "tags": list(c["tags"]),
        "note": c["note"],
        "verifiedEmail": c["verified_email"],
        "defaultEmailAddress": {
            "__typename": "CustomerEmailAddress",
            "emailAddress": c["email"],
            "marketingState": "NOT_SUBSCRIBED",
        },
        "defaultAddress": _mail(c["address"]),
    }


def _connection(
    q: QueryCtx, type_name: str, nodes: list[dict[str, Any]], args: dict[str, Any], field_name: str
) -> dict[str, Any]:
    first, last, after, before = args.get("first"), args.get("last"), args.get("after"), args.get("before")
    if first is None and last is None:
        raise gql.FieldError("you must provide one of first or last", {"code": "BAD_REQUEST"})
    if first is not None and last is not None:
        raise gql.FieldError(
            f"Passing both `first` and `last` to paginate the `{field_name}` connection is not supported.",
            {"code": "BAD_REQUEST"},
        )
    n = first if first is not None else last
    if not isinstance(n, int) or n < 0 or n > MAX_PAGE:
        raise gql.FieldError(
            f"The requested page size must be between 0 and {MAX_PAGE}", {"code": "BAD_REQUEST"}
        )
    n = min(n, q.ctx.state.config.max_page_size or n)
    ids = [node["id"] for node in nodes]
    lo, hi = 0, len(nodes)
    for cursor, is_after in ((after, True), (before, False)):
        if cursor is None:
            continue
        data = decode_cursor(str(cursor))
        if data is None or data.get("last_id") not in ids:
            raise gql.FieldError("Invalid cursor for current pagination", {"code": "BAD_REQUEST"})
        pos = ids.index(data["last_id"])
        if is_after:
            lo = max(lo, pos + 1)
        else:
            hi = min(hi, pos)
    window = list(range(lo, max(lo, hi)))
    picked = window[:n] if first is not None else window[max(0, len(window) - n) :]
    page = [nodes[i] for i in picked]
    edges = [
        {"__typename": f"{type_name}Edge", "cursor": encode_cursor({"last_id": node["id"]}), "node": node}
        for node in page
    ]
    return {
        "__typename": f"{type_name}Connection",
        "edges": edges,
        "nodes": page,
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": bool(picked) and picked[-1] < len(nodes) - 1,
            "hasPreviousPage": bool(picked) and picked[0] > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


_TERM_RE = re.compile(r"""(-?)(?:([A-Za-z_]+):)?(>=|<=|>|<)?("(?:[^"\\]|\\.)*"|'[^']*'|\S+)""")


def _search_terms(query: str) -> list[list[tuple[bool, str | None, str, str]]]:
    """Shopify search syntax: space-separated terms (AND), `OR` between groups, `-` negates."""
    groups: list[list[tuple[bool, str | None, str, str]]] = [[]]
    for m in _TERM_RE.finditer(query):
        neg, key, op, value = m.groups()
        if key is None and not op and value in ("OR", "AND", "NOT"):
            if value == "OR":
                groups.append([])
            continue
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            value = value[1:-1]
        groups[-1].append((bool(neg), key.lower() if key else None, op or ":", value))
    return [g for g in groups if g]


def _compare(actual: Any, op: str, wanted: str) -> bool:
    if actual is None:
        return False
    if op == ":":
        if isinstance(actual, list):
            return any(str(a).lower() == wanted.lower() for a in actual)
        w = wanted.lower()
        a = str(actual).lower()
        return a == w or (w.endswith("*") and a.startswith(w[:-1]))
    if isinstance(actual, int | float):
        ts = parse_time(wanted)
        try:
            b = ts if ts is not None else float(wanted)
        except ValueError:
            return False
        return {">": actual > b, "<": actual < b, ">=": actual >= b, "<=": actual <= b}[op]
    return False


ORDER_FIELDS = {
    "email": lambda o: o["email"],
    "name": lambda o: [o["name"], o["name"].lstrip("#")],
    "customer_id": lambda o: str(o["customer_id"]),
    "id": lambda o: o["id"],
    "financial_status": lambda o: o["financial"].lower(),
    "fulfillment_status": lambda o: {
        "FULFILLED": ["shipped", "fulfilled"],
        "UNFULFILLED": ["unshipped", "unfulfilled"],
        "PARTIALLY_FULFILLED": ["partial"],
        "IN_PROGRESS": ["unfulfilled"],
    }.get(o["fulfillment"], [o["fulfillment"].lower()]),
    "status": lambda o: (
        ["any"]
        + (["cancelled"] if o["cancelled_at"] else [])
        + (["closed"] if o["closed_at"] else ["open", "not_closed"])
    ),
    "created_at": lambda o: o["created_at"],
    "processed_at": lambda o: o["processed_at"],
    "updated_at": lambda o: o["updated_at"],
    "tag": lambda o: o["tags"],
}
CUSTOMER_FIELDS = {
    "email": lambda c: c["email"],
    "first_name": lambda c: c["first_name"],
    "last_name": lambda c: c["last_name"],
    "phone": lambda c: c["phone"],
    "id": lambda c: c["id"],
    "state": lambda c: c["state"].lower(),
    "tag": lambda c: c["tags"],
    "created_at": lambda c: c["created_at"],
    "updated_at": lambda c: c["updated_at"],
}


def _filter(
    q: QueryCtx,
    items: list[dict[str, Any]],
    query: str | None,
    fields: dict[str, Any],
    field_name: str,
    text: Any,
) -> list[dict[str, Any]]:
    if not query:
        return items
    groups = _search_terms(query)
    warnings = []
    for group in groups:
        for _, key, _, _ in group:
            if key is not None and key not in fields:
                warnings.append({"field": key, "message": "Invalid search field for this query."})
    if warnings:
        q.ctx.request.scope.setdefault("shopify.search", []).append(
            {"path": [field_name], "query": query, "warnings": warnings}
        )

    def term_ok(item: dict[str, Any], term: tuple[bool, str | None, str, str]) -> bool:
        neg, key, op, value = term
        if key is None:
            hit = any(value.lower() in str(t).lower() for t in text(item))
        elif key not in fields:
            return True  # Shopify ignores an invalid search field (and warns)
        else:
            hit = _compare(fields[key](item), op, value)
        return hit != neg

    return [it for it in items if any(all(term_ok(it, t) for t in g) for g in groups)]


SORTS = {
    "ID": lambda o: o["id"],
    "CREATED_AT": lambda o: (o["created_at"], o["id"]),
    "PROCESSED_AT": lambda o: (o["processed_at"], o["id"]),
    "UPDATED_AT": lambda o: (o["updated_at"], o["id"]),
    "ORDER_NUMBER": lambda o: o["id"],
    "TOTAL_PRICE": lambda o: (sum(li["price"] * li["quantity"] for li in o["lines"]), o["id"]),
    "CUSTOMER_NAME": lambda o: (o["email"], o["id"]),
    "FINANCIAL_STATUS": lambda o: (o["financial"], o["id"]),
    "FULFILLMENT_STATUS": lambda o: (o["fulfillment"], o["id"]),
    "RELEVANCE": lambda o: o["id"],
}
CUSTOMER_SORTS = {
    "ID": lambda c: c["id"],
    "CREATED_AT": lambda c: (c["created_at"], c["id"]),
    "UPDATED_AT": lambda c: (c["updated_at"], c["id"]),
    "NAME": lambda c: (c["first_name"] + " " + c["last_name"], c["id"]),
    "RELEVANCE": lambda c: c["id"],
}


def _orders_connection(
    q: QueryCtx, orders: list[dict[str, Any]], args: dict[str, Any], field_name: str
) -> Any:
    orders = _filter(
        q,
        orders,
        args.get("query"),
        ORDER_FIELDS,
        field_name,
        lambda o: [o["name"], o["email"], *[li["title"] for li in o["lines"]]],
    )
    orders.sort(key=SORTS[args.get("sortKey") or "PROCESSED_AT"], reverse=bool(args.get("reverse")))
    return _connection(q, "Order", [_order_node(o) for o in orders], args, field_name)


def r_orders(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "orders", "read_orders")
    return _orders_connection(q, _visible_orders(q), args, "orders")


def r_order(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "order", "read_orders")
    parsed = _parse_gid(args["id"], "Order")
    if parsed is None:
        raise gql.FieldError(
            f"Invalid global id '{args['id']}'",
            {"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
        )
    o = next((o for o in _visible_orders(q) if o["id"] == parsed[1]), None)
    return _order_node(o) if o else None


def r_customers(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "customers", "read_customers")
    customers = _filter(
        q,
        list(q.store.customers.values()),
        args.get("query"),
        CUSTOMER_FIELDS,
        "customers",
        lambda c: [c["email"], c["first_name"], c["last_name"]],
    )
    customers.sort(key=CUSTOMER_SORTS[args.get("sortKey") or "ID"], reverse=bool(args.get("reverse")))
    return _connection(q, "Customer", [_customer_node(c, q) for c in customers], args, "customers")


def r_customer(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "customer", "read_customers")
    parsed = _parse_gid(args["id"], "Customer")
    if parsed is None:
        raise gql.FieldError(
            f"Invalid global id '{args['id']}'",
            {"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
        )
    c = q.store.customers.get(parsed[1])
    return _customer_node(c, q) if c else None


def _node(q: QueryCtx, gid: Any) -> Any:
    parsed = _parse_gid(gid)
    if parsed is None:
        raise gql.FieldError(
            f"Invalid global id '{gid}'",
            {"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
        )
    kind, oid = parsed
    if kind == "Order":
        _require(q, "node", "read_orders")
        o = next((o for o in _visible_orders(q) if o["id"] == oid), None)
        return _order_node(o) if o else None
    if kind == "Customer":
        _require(q, "node", "read_customers")
        c = q.store.customers.get(oid)
        return _customer_node(c, q) if c else None
    return None


def r_node(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    return _node(q, args["id"])


def r_nodes(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    return [_node(q, gid) for gid in args["ids"]]


def r_shop(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    ctx = q.ctx
    return {
        "__typename": "Shop",
        "id": "gid://shopify/Shop/60000000001",
        "name": "Acme",
        "email": seed.ACCOUNT_EMAIL,
        "contactEmail": seed.ACCOUNT_EMAIL,
        "myshopifyDomain": f"{ctx.tenant}.myshopify.com",
        "url": "https://shop.acme.example",
        "currencyCode": "USD",
        "ianaTimezone": "Europe/London",
        "timezoneAbbreviation": "GMT",
        "description": "Acme's sandbox shop",
        "createdAt": iso(ctx.state.anchor - 900 * DAY),
        "primaryDomain": {
            "__typename": "Domain",
            "id": "gid://shopify/Domain/70000000001",
            "host": "shop.acme.example",
            "url": "https://shop.acme.example",
            "sslEnabled": True,
        },
        "plan": {
            "__typename": "ShopPlan",
            "displayName": "Basic",
            "partnerDevelopment": False,
            "shopifyPlus": False,
            "publicDisplayName": "Basic",
        },
    }


def r_order_customer(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "customer", "read_customers")
    c = q.store.customers.get(parent["_raw"]["customer_id"])
    return _customer_node(c, q) if c else None


def r_line_items(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    o = parent["_raw"]
    nodes = [
        {
            "__typename": "LineItem",
            "id": _gid("LineItem", li["id"]),
            "name": li["title"],
            "title": li["title"],
            "quantity": li["quantity"],
            "currentQuantity": li["quantity"],
            "sku": li["sku"],
            "variantTitle": li["variant_title"],
            "vendor": li["vendor"],
            "originalUnitPriceSet": _bag(li["price"]),
            "discountedUnitPriceSet": _bag(li["price"]),
            "originalTotalSet": _bag(li["price"] * li["quantity"]),
        }
        for li in o["lines"]
    ]
    return _connection(q, "LineItem", nodes, args, "lineItems")


def r_fulfillments(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    items = parent["_raw"]["fulfillments"]
    if args.get("first") is not None:
        items = items[: args["first"]]
    return [
        {
            "__typename": "Fulfillment",
            "id": _gid("Fulfillment", f["id"]),
            "name": f"{parent['name']}-F1",
            "status": f["status"],
            "displayStatus": f["display_status"],
            "createdAt": iso(f["created_at"]),
            "updatedAt": iso(f["created_at"]),
            "inTransitAt": iso(f["created_at"] + DAY),
            "deliveredAt": iso(f["created_at"] + 3 * DAY) if f["display_status"] == "DELIVERED" else None,
            "estimatedDeliveryAt": None,
            "_tracking": f["tracking"],
        }
        for f in items
    ]


def r_tracking(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    items = parent["_tracking"]
    if args.get("first") is not None:
        items = items[: args["first"]]
    return [{"__typename": "FulfillmentTrackingInfo", **t} for t in items]


def r_customer_orders(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "orders", "read_orders")
    mine = [o for o in _visible_orders(q) if o["customer_id"] == parent["_raw"]["id"]]
    return _orders_connection(q, mine, args, "orders")


def r_last_order(parent: Any, args: dict[str, Any], q: QueryCtx) -> Any:
    _require(q, "lastOrder", "read_orders")
    mine = sorted(
        (o for o in _visible_orders(q) if o["customer_id"] == parent["_raw"]["id"]), key=lambda o: o["id"]
    )
    return _order_node(mine[-1]) if mine else None


def _page_args(sort_enum: str | None = None) -> dict[str, gql.Arg]:
    args = {
        "first": gql.Arg("Int"),
        "after": gql.Arg("String"),
        "last": gql.Arg("Int"),
        "before": gql.Arg("String"),
        "reverse": gql.Arg("Boolean", False),
    }
    if sort_enum:
        args.update(query=gql.Arg("String"), sortKey=gql.Arg(sort_enum))
    return args


def _scalars(**fields: str) -> dict[str, gql.FieldDef]:
    return {name: gql.FieldDef(t) for name, t in fields.items()}


def _connection_types(name: str) -> dict[str, gql.ObjectType]:
    return {
        f"{name}Connection": gql.ObjectType(
            f"{name}Connection",
            {
                "edges": gql.FieldDef(f"[{name}Edge!]!"),
                "nodes": gql.FieldDef(f"[{name}!]!"),
                "pageInfo": gql.FieldDef("PageInfo!"),
            },
        ),
        f"{name}Edge": gql.ObjectType(
            f"{name}Edge", {"cursor": gql.FieldDef("String!"), "node": gql.FieldDef(f"{name}!")}
        ),
    }


def build_schema() -> gql.Schema:
    F = gql.FieldDef  # noqa: N806
    types: dict[str, gql.ObjectType] = {
        "QueryRoot": gql.ObjectType(
            "QueryRoot",
            {
                "shop": F("Shop!", resolve=r_shop),
                "orders": F("OrderConnection!", _page_args("OrderSortKeys"), r_orders),
                "order": F("Order", {"id": gql.Arg("ID!")}, r_order),
                "customers": F("CustomerConnection!", _page_args("CustomerSortKeys"), r_customers),
                "customer": F("Customer", {"id": gql.Arg("ID!")}, r_customer),
                "node": F("Node", {"id": gql.Arg("ID!")}, r_node),
                "nodes": F("[Node]!", {"ids": gql.Arg("[ID!]!")}, r_nodes),
            },
        ),
        "Shop": gql.ObjectType(
            "Shop",
            {
                **_scalars(
                    id="ID!",
                    name="String!",
                    email="String!",
                    contactEmail="String!",
                    myshopifyDomain="String!",
                    url="URL!",
                    currencyCode="CurrencyCode!",
                    ianaTimezone="String!",
                    timezoneAbbreviation="String!",
                    description="String",
                    createdAt="DateTime!",
                ),
                "primaryDomain": F("Domain!"),
                "plan": F("ShopPlan!"),
            },
            ("Node",),
        ),
        "Domain": gql.ObjectType(
            "Domain", _scalars(id="ID!", host="String!", url="URL!", sslEnabled="Boolean!")
        ),
        "ShopPlan": gql.ObjectType(
            "ShopPlan",
            _scalars(
                displayName="String!",
                partnerDevelopment="Boolean!",
                shopifyPlus="Boolean!",
                publicDisplayName="String!",
            ),
        ),
        "Order": gql.ObjectType(
            "Order",
            {
                **_scalars(
                    id="ID!",
                    legacyResourceId="UnsignedInt64!",
                    name="String!",
                    email="String",
                    phone="String",
                    createdAt="DateTime!",
                    updatedAt="DateTime!",
                    processedAt="DateTime!",
                    cancelledAt="DateTime",
                    cancelReason="OrderCancelReason",
                    closed="Boolean!",
                    closedAt="DateTime",
                    confirmed="Boolean!",
                    test="Boolean!",
                    note="String",
                    tags="[String!]!",
                    displayFinancialStatus="OrderDisplayFinancialStatus",
                    displayFulfillmentStatus="OrderDisplayFulfillmentStatus!",
                    currencyCode="CurrencyCode!",
                    presentmentCurrencyCode="CurrencyCode!",
                    customerLocale="String",
                    statusPageUrl="URL!",
                    returnStatus="OrderReturnStatus!",
                ),
                "totalPriceSet": F("MoneyBag!"),
                "currentTotalPriceSet": F("MoneyBag!"),
                "subtotalPriceSet": F("MoneyBag"),
                "totalShippingPriceSet": F("MoneyBag!"),
                "totalTaxSet": F("MoneyBag"),
                "totalRefundedSet": F("MoneyBag!"),
                "shippingAddress": F("MailingAddress"),
                "billingAddress": F("MailingAddress"),
                "customer": F("Customer", resolve=r_order_customer),
                "lineItems": F("LineItemConnection!", _page_args(), r_line_items),
                "fulfillments": F("[Fulfillment!]!", {"first": gql.Arg("Int")}, r_fulfillments),
            },
            ("Node",),
        ),
        "Customer": gql.ObjectType(
            "Customer",
            {
                **_scalars(
                    id="ID!",
                    legacyResourceId="UnsignedInt64!",
                    email="String",
                    firstName="String",
                    lastName="String",
                    displayName="String!",
                    phone="String",
                    numberOfOrders="UnsignedInt64!",
                    createdAt="DateTime!",
                    updatedAt="DateTime!",
                    state="CustomerState!",
                    tags="[String!]!",
                    note="String",
                    verifiedEmail="Boolean!",
                ),
                "amountSpent": F("MoneyV2!"),
                "defaultEmailAddress": F("CustomerEmailAddress"),
                "defaultAddress": F("MailingAddress"),
                "orders": F("OrderConnection!", _page_args("OrderSortKeys"), r_customer_orders),
                "lastOrder": F("Order", resolve=r_last_order),
            },
            ("Node",),
        ),
        "CustomerEmailAddress": gql.ObjectType(
            "CustomerEmailAddress", _scalars(emailAddress="String!", marketingState="String!")
        ),
        "MoneyBag": gql.ObjectType(
            "MoneyBag", {"shopMoney": F("MoneyV2!"), "presentmentMoney": F("MoneyV2!")}
        ),
        "MoneyV2": gql.ObjectType("MoneyV2", _scalars(amount="Decimal!", currencyCode="CurrencyCode!")),
        "MailingAddress": gql.ObjectType(
            "MailingAddress",
            _scalars(
                name="String",
                firstName="String",
                lastName="String",
                address1="String",
                address2="String",
                city="String",
                province="String",
                provinceCode="String",
                zip="String",
                country="String",
                countryCodeV2="CountryCode",
                phone="String",
                company="String",
                formatted="[String!]!",
            ),
        ),
        "LineItem": gql.ObjectType(
            "LineItem",
            {
                **_scalars(
                    id="ID!",
                    name="String!",
                    title="String!",
                    quantity="Int!",
                    currentQuantity="Int!",
                    sku="String",
                    variantTitle="String",
                    vendor="String",
                ),
                "originalUnitPriceSet": F("MoneyBag!"),
                "discountedUnitPriceSet": F("MoneyBag!"),
                "originalTotalSet": F("MoneyBag!"),
            },
        ),
        "Fulfillment": gql.ObjectType(
            "Fulfillment",
            {
                **_scalars(
                    id="ID!",
                    name="String!",
                    status="FulfillmentStatus!",
                    displayStatus="FulfillmentDisplayStatus",
                    createdAt="DateTime!",
                    updatedAt="DateTime!",
                    inTransitAt="DateTime",
                    deliveredAt="DateTime",
                    estimatedDeliveryAt="DateTime",
                ),
                "trackingInfo": F("[FulfillmentTrackingInfo!]!", {"first": gql.Arg("Int")}, r_tracking),
            },
        ),
        "FulfillmentTrackingInfo": gql.ObjectType(
            "FulfillmentTrackingInfo", _scalars(company="String", number="String", url="URL")
        ),
        "PageInfo": gql.ObjectType(
            "PageInfo",
            _scalars(
                hasNextPage="Boolean!", hasPreviousPage="Boolean!", startCursor="String", endCursor="String"
            ),
        ),
        **_connection_types("Order"),
        **_connection_types("Customer"),
        **_connection_types("LineItem"),
    }
    enums = {
        "OrderSortKeys": frozenset(SORTS),
        "CustomerSortKeys": frozenset(CUSTOMER_SORTS),
    }
    return gql.Schema(
        query="QueryRoot", types=types, enums=enums, interfaces={"Node": {"id": gql.FieldDef("ID!")}}
    )


SCHEMA = build_schema()


# --- cost ----------------------------------------------------------------------------------------


def _requested_cost(req: gql.Request, type_name: str, selections: list[Any] | None) -> int:
    total = 0
    fields = SCHEMA.fields_of(type_name) or {}
    for f in gql.selection_fields(req, selections):
        fd = fields.get(f.name) or _any_field(f.name)
        if fd is None:
            continue
        target = gql.named_type(fd.type)
        if target.endswith("Connection"):
            args = {k: gql.resolve_value(v, req.variables) for k, v in f.args.items()}
            n = args.get("first") or args.get("last") or 0
            total += 2 + int(n) * (1 + _node_cost(req, target[: -len("Connection")], f.selections))
        elif SCHEMA.is_composite(target) and target not in (
            "MoneyBag",
            "MoneyV2",
            "PageInfo",
            "MailingAddress",
        ):
            total += 1 + _requested_cost(req, target, f.selections)
    return total


def _node_cost(req: gql.Request, node_type: str, selections: list[Any] | None) -> int:
    total = 0
    for f in gql.selection_fields(req, selections):
        if f.name == "edges":
            for g in gql.selection_fields(req, f.selections):
                if g.name == "node":
                    total = max(total, _requested_cost(req, node_type, g.selections))
        elif f.name == "nodes":
            total = max(total, _requested_cost(req, node_type, f.selections))
    return total


def _any_field(name: str) -> gql.FieldDef | None:
    for t in SCHEMA.types.values():
        if name in t.fields:
            return t.fields[name]
    return None


def _actual_cost(data: Any) -> int:
    """Objects returned (connections 2 + their nodes), read off the response data."""
    if isinstance(data, list):
        return sum(_actual_cost(d) for d in data)
    if not isinstance(data, dict):
        return 0
    total = 0
    for value in data.values():
        if isinstance(value, dict):
            if "edges" in value or "nodes" in value:
                items = value.get("nodes") or [
                    e.get("node") for e in value.get("edges") or [] if isinstance(e, dict)
                ]
                total += 2 + sum(1 + _actual_cost(n) for n in items if n)
            elif "amount" not in value and "hasNextPage" not in value and "shopMoney" not in value:
                total += 1 + _actual_cost(value)
        elif isinstance(value, list):
            total += sum(1 + _actual_cost(v) for v in value if isinstance(v, dict))
    return total


def _bucket(ctx: Ctx, token: str, spend: float = 0.0) -> float:
    cfg = ctx.state.config
    available, last = ctx.store.buckets.get(token, (cfg.shopify_max_available, ctx.now))
    available = min(cfg.shopify_max_available, available + (ctx.now - last) * cfg.shopify_restore_rate)
    available -= spend
    ctx.store.buckets[token] = (available, ctx.now)
    return available


def _cost_ext(ctx: Ctx, requested: int, actual: int | None, available: float) -> dict[str, Any]:
    cfg = ctx.state.config
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": float(cfg.shopify_max_available),
                "currentlyAvailable": round(max(0.0, available), 1),
                "restoreRate": float(cfg.shopify_restore_rate),
            },
        }
    }


async def graphql_endpoint(ctx: Ctx) -> Response:
    bad = _version_ok(ctx)
    if bad:
        return bad
    content_type = ctx.request.headers.get("content-type", "")
    variables: Any = None
    operation_name = None
    if content_type.startswith("application/graphql"):
        source = (await ctx.request.body()).decode("utf-8", "replace")
    else:
        body, ok = await read_json(ctx.request)
        if not ok:
            return _version_header(ctx, json_response({"errors": "Invalid JSON in request body"}, 400))
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return _version_header(
                ctx, json_response({"errors": {"query": "Required parameter missing or invalid"}}, 400)
            )
        source, variables, operation_name = body["query"], body.get("variables"), body.get("operationName")
    try:
        req = gql.prepare(SCHEMA, source, variables, operation_name)
    except gql.GraphQLError as exc:
        return _version_header(ctx, json_response({"errors": [exc.to_dict()]}))
    except gql.ValidationErrors as exc:
        return _version_header(ctx, json_response({"errors": [e.to_dict() for e in exc.errors]}))
    assert ctx.principal is not None
    token = ctx.principal.token
    requested = max(1, _requested_cost(req, "QueryRoot", req.operation.selections))
    available = _bucket(ctx, token)
    if requested > available:
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
            "extensions": _cost_ext(ctx, requested, None, available),
        }
        return _version_header(ctx, json_response(body))
    data, errors = gql.execute(SCHEMA, req, None, QueryCtx(ctx, ctx.principal.scopes))
    actual = max(1, _actual_cost(data))
    available = _bucket(ctx, token, actual)
    out: dict[str, Any] = {}
    if errors:
        out["errors"] = [e.to_dict() for e in errors]
    out["data"] = data
    out["extensions"] = _cost_ext(ctx, requested, actual, available)
    if ctx.request.scope.get("shopify.search"):
        out["extensions"]["search"] = ctx.request.scope["shopify.search"]
    return _version_header(ctx, json_response(out))
