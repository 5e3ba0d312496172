"""Shopify Admin GraphQL API (https://{shop}.myshopify.com/admin/api/{version}/graphql.json).

Auth is the `X-Shopify-Access-Token` header. REST is legacy, so everything here is GraphQL:
errors come back as HTTP 200 with `errors[]` (a throttled query is retried by the transport from
`extensions.cost`), lists page with `first`/`after` and `pageInfo{hasNextPage endCursor}`.
An order is the visitor's when its `email` equals the token's email; Shopify's `email:` search
filter is a convenience only, every order is checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import (
    MAX_PAGES,
    RETRY_SAFE,
    body,
    forbidden,
    object_schema,
    same_email,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, ConfigField, Connector, VendorOAuth
from botctl.connectors.scopes import write_implies_read

if TYPE_CHECKING:
    import httpx

VENDOR = "Shopify"
API_VERSION = "2026-07"  # quarterly versions live about 12 months: bump with each release cycle
GRAPHQL = f"/admin/api/{API_VERSION}/graphql.json"

_ORDER_FIELDS = """
  id name email createdAt cancelledAt closedAt
  displayFinancialStatus displayFulfillmentStatus statusPageUrl
  totalPriceSet { shopMoney { amount currencyCode } }
"""
ORDERS_QUERY = (
    "query MyOrders($q: String!, $after: String) {"
    " orders(first: 50, after: $after, query: $q, sortKey: CREATED_AT, reverse: true) {"
    f"  edges {{ node {{ {_ORDER_FIELDS} }} }}"
    "  pageInfo { hasNextPage endCursor } } }"
)
ORDER_QUERY = (
    "query MyOrder($id: ID!) { order(id: $id) {"
    f" {_ORDER_FIELDS}"
    " lineItems(first: 50) { edges { node { name quantity } } }"
    " fulfillments { status trackingInfo { number url company } } } }"
)
SHOP_QUERY = "{ shop { name myshopifyDomain } }"


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`data` of a query; GraphQL-level errors become ActionErrors."""
    payload = {"query": query, "variables": variables or {}}
    res = body(await client.post(GRAPHQL, json=payload, extensions=RETRY_SAFE), VENDOR)
    errors = res.get("errors") if isinstance(res, dict) else None
    data = res.get("data") if isinstance(res, dict) else None
    if errors:
        codes = {str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
        if "ACCESS_DENIED" in codes:
            raise ActionError(
                "missing_scope",
                "The Shopify connection lacks an access scope (or protected customer data access) for this.",
            )
        if not data:
            msg = next(
                (e.get("message") for e in errors if isinstance(e, dict) and e.get("message")), "query failed"
            )
            raise ActionError("upstream_error", f"Shopify: {str(msg)[:200]}")
    if not isinstance(data, dict):
        raise ActionError("upstream_error", "Shopify returned no data.")
    return data


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    shop = (await graphql(client, SHOP_QUERY)).get("shop") or {}
    return f"{shop.get('name') or 'Shopify store'} ({shop.get('myshopifyDomain') or config.get('shop')})"


async def revoke(client: httpx.AsyncClient, config: Mapping[str, str]) -> None:
    # Uninstalls the app from the store, which invalidates its access tokens.
    await client.delete("/admin/api_permissions/current.json")


def _search_value(s: str) -> str:
    # Shopify search syntax: backslash-escape the characters with a meaning in a query.
    return re.sub(r'([\\:()"\'\s])', r"\\\1", s)


def _order(o: dict[str, Any]) -> dict[str, Any]:
    money = ((o.get("totalPriceSet") or {}).get("shopMoney")) or {}
    return {
        "id": str(o.get("id", "")).rsplit("/", 1)[-1],
        "name": o.get("name"),
        "created_at": o.get("createdAt"),
        "cancelled_at": o.get("cancelledAt"),
        "financial_status": o.get("displayFinancialStatus"),
        "fulfillment_status": o.get("displayFulfillmentStatus"),
        "total": money.get("amount"),
        "currency": money.get("currencyCode"),
        "status_url": o.get("statusPageUrl"),
    }


async def list_my_orders(ctx: ActionContext) -> dict[str, Any]:
    email = visitor_email(ctx)
    nodes: list[dict[str, Any]] = []
    after: str | None = None
    truncated = True
    for _ in range(MAX_PAGES):
        data = await graphql(ctx.client, ORDERS_QUERY, {"q": f"email:{_search_value(email)}", "after": after})
        conn = data.get("orders") or {}
        nodes.extend(e["node"] for e in conn.get("edges") or [] if isinstance(e, dict) and e.get("node"))
        info = conn.get("pageInfo") or {}
        after = info.get("endCursor")
        if not info.get("hasNextPage") or not after:
            truncated = False
            break
    out = [_order(o) for o in nodes if same_email(o.get("email"), email)]
    touched(ctx, (o["id"] for o in out))
    return {"orders": out, "truncated": truncated}


async def get_my_order(ctx: ActionContext) -> dict[str, Any]:
    email = visitor_email(ctx)
    raw = ctx.params["order_id"]
    gid = raw if raw.startswith("gid://") else f"gid://shopify/Order/{raw}"
    order = (await graphql(ctx.client, ORDER_QUERY, {"id": gid})).get("order")
    if not order:
        raise ActionError("not_found", "No such order.")
    # An order without a readable email cannot be shown: ownership would be unproven.
    if not same_email(order.get("email"), email):
        raise forbidden("order")
    touched(ctx, [_order(order)["id"]])
    items = [
        {"name": e["node"].get("name"), "quantity": e["node"].get("quantity")}
        for e in ((order.get("lineItems") or {}).get("edges") or [])
        if isinstance(e, dict) and e.get("node")
    ]
    tracking = [
        {"status": f.get("status"), **{k: t.get(k) for k in ("number", "url", "company")}}
        for f in order.get("fulfillments") or []
        for t in f.get("trackingInfo") or []
    ]
    return {**_order(order), "closed_at": order.get("closedAt"), "items": items, "tracking": tracking}


# docs/vendors.md §7.1: no PKCE in the Admin OAuth flow; comma-separated scopes; client_secret in the body;
# expiring offline tokens (expiring=1): 1 h access + rotating refresh token. Revocation is the
# app uninstalling itself: DELETE /admin/api_permissions/current.json (this module's `revoke`).
OAUTH_CLIENT = VendorOAuth(
    authorize_url="https://{shop}.myshopify.com/admin/oauth/authorize",
    token_url="https://{shop}.myshopify.com/admin/oauth/access_token",
    revoke_url=None,
    metadata_url=None,
    token_auth="client_secret_post",
    revoke_auth="client_secret_post",
    pkce=False,
    scope_separator=",",
    token_params=(("expiring", "1"),),
    rotates_refresh_tokens="yes",
    access_ttl="1 h",
    redirect_note="add http://127.0.0.1:PORT/callback to the app's allowed redirection URLs and set "
    "--redirect-port PORT",
)


CONNECTOR = Connector(
    name="shopify",
    vendor=VENDOR,
    category="ecommerce",
    auth="oauth",
    auth_style="shopify_header",
    scopes=("read_orders",),
    base_url="https://{shop}.myshopify.com",
    config=(
        ConfigField("shop", "label", "acme for acme.myshopify.com", suffix=".myshopify.com", alias="--shop"),
    ),
    sandbox_path="/shopify/{shop}",
    default_headers={},
    validate=validate,
    revoke=revoke,
    actions=(
        Action(
            name="list_my_orders",
            description="The visitor's orders, newest first, with payment and fulfilment status.",
            params=object_schema(),
            customer_specific=True,
            scopes=("read_orders",),
            idempotent=True,
            handler=list_my_orders,
        ),
        Action(
            name="get_my_order",
            description="One of the visitor's orders with items and tracking.",
            params=object_schema(
                {"order_id": {"type": "string", "pattern": "^(gid://shopify/Order/)?[0-9]{1,20}$"}},
                required=["order_id"],
            ),
            customer_specific=True,
            scopes=("read_orders",),
            idempotent=True,
            handler=get_my_order,
        ),
    ),
    docs_url="https://shopify.dev/docs/api/admin-graphql",
    oauth_client=OAUTH_CLIENT,
    broader_scopes=write_implies_read("read_", "write_", prefix=True),
)
