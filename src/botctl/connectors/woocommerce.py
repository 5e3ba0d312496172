"""WooCommerce REST API v3 ({site}/wp-json/wc/v3): consumer key + secret as HTTPS Basic auth.

`site` is the store's full URL (it may be a subdirectory install). The sandbox names stores by
a short tenant name instead, so `sandbox_path` is `/woocommerce/{store}` where `{store}` is the
first label of the site's host (`https://acme.example` → `acme`; see `botctl.connectors.urls`).

An order is the visitor's when its `customer_id` is one of the visitor's customer accounts
(found by email), or when it is a guest order (`customer_id` 0) whose billing email is the
visitor's. Lists page with `page`/`per_page` and the `X-WP-TotalPages` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import (
    MAX_PAGES,
    body,
    forbidden,
    object_schema,
    same_email,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, ConfigField, Connector
from botctl.connectors.scopes import also_covered_by

if TYPE_CHECKING:
    import httpx

VENDOR = "WooCommerce"
API = "/wp-json/wc/v3"
PER_PAGE = 100
_ORDER_ID = {"type": "integer", "minimum": 1}


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    # The route index GET /wp-json/wc/v3 is public and proves nothing; listing orders needs the keys.
    orders = body(await client.get(f"{API}/orders", params={"per_page": 1}), VENDOR)
    if not isinstance(orders, list):
        raise ActionError("upstream_error", "WooCommerce answered the order list with something else.")
    from urllib.parse import urlsplit

    host = urlsplit(config.get("site", "")).netloc or "the store"
    return f"WooCommerce at {host}"


async def _pages(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    items: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        response = await client.get(path, params={**params, "per_page": PER_PAGE, "page": page})
        batch = body(response, VENDOR)
        batch = [o for o in batch if isinstance(o, dict)] if isinstance(batch, list) else []
        items.extend(batch)
        try:
            total_pages = int(response.headers.get("x-wp-totalpages", "0"))
        except ValueError:
            total_pages = 0
        more = page < total_pages if total_pages else "next" in response.links
        if not more or not batch:
            return items, False
    return items, True


async def _my_customer_ids(ctx: ActionContext) -> set[int]:
    email = visitor_email(ctx)
    customers, _ = await _pages(ctx.client, f"{API}/customers", {"email": email, "role": "all"})
    return {int(c["id"]) for c in customers if c.get("id") and same_email(c.get("email"), email)}


def _is_mine(order: dict[str, Any], customer_ids: set[int], email: str) -> bool:
    cid = order.get("customer_id")
    if cid:
        return int(cid) in customer_ids
    # A guest order has no account: its billing email is the only owner it names.
    return same_email((order.get("billing") or {}).get("email"), email)


def _order(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": o.get("id"),
        "number": o.get("number"),
        "status": o.get("status"),
        "total": o.get("total"),
        "currency": o.get("currency"),
        "date_created": o.get("date_created"),
        "date_paid": o.get("date_paid"),
        "date_completed": o.get("date_completed"),
    }


async def _my_order(ctx: ActionContext, order_id: int) -> dict[str, Any]:
    email = visitor_email(ctx)
    try:
        order = body(await ctx.client.get(f"{API}/orders/{order_id}"), VENDOR)
    except ActionError as e:
        if e.code == "not_found":
            raise ActionError("not_found", "No such order.", upstream_status=404) from None
        raise
    if not _is_mine(order, await _my_customer_ids(ctx), email):
        raise forbidden("order")
    touched(ctx, [order_id])
    return order


async def list_my_orders(ctx: ActionContext) -> dict[str, Any]:
    email = visitor_email(ctx)
    ids = await _my_customer_ids(ctx)
    found: dict[int, dict[str, Any]] = {}
    truncated = False
    queries = [{"customer": cid, "status": "any"} for cid in sorted(ids)]
    queries.append({"search": email, "status": "any"})  # guest orders carry only a billing email
    for q in queries:
        orders, more = await _pages(ctx.client, f"{API}/orders", q)
        truncated |= more
        for o in orders:
            if o.get("id") and _is_mine(o, ids, email):
                found[int(o["id"])] = o
    out = [
        _order(o)
        for o in sorted(found.values(), key=lambda o: str(o.get("date_created") or ""), reverse=True)
    ]
    touched(ctx, (o["id"] for o in out))
    return {"orders": out, "truncated": truncated}


async def get_my_order(ctx: ActionContext) -> dict[str, Any]:
    o = await _my_order(ctx, ctx.params["order_id"])
    items = [
        {"name": li.get("name"), "quantity": li.get("quantity"), "total": li.get("total")}
        for li in o.get("line_items") or []
    ]
    shipping = [s.get("method_title") for s in o.get("shipping_lines") or []]
    return {**_order(o), "items": items, "shipping": shipping}


async def add_order_note(ctx: ActionContext) -> dict[str, Any]:
    order_id = ctx.params["order_id"]
    await _my_order(ctx, order_id)
    # customer_note false: a private note for the shop's staff (true would email the customer).
    note = {
        "note": f"Message from the customer via support chat: {ctx.params['note']}",
        "customer_note": False,
    }
    created = body(await ctx.client.post(f"{API}/orders/{order_id}/notes", json=note), VENDOR)
    touched(ctx, [f"note:{created.get('id')}"])
    return {"order_id": order_id, "note_id": created.get("id"), "date_created": created.get("date_created")}


CONNECTOR = Connector(
    name="woocommerce",
    vendor=VENDOR,
    category="ecommerce",
    auth="api_key",
    auth_style="basic_key_secret",
    # Key permissions (wc-auth scope read / write; read_write grants both).
    scopes=("read", "write"),
    base_url="{site}",
    config=(ConfigField("site", "url", "the store's site URL", alias="--site", sandbox_tenant="store"),),
    sandbox_path="/woocommerce/{store}",
    default_headers={},
    validate=validate,
    actions=(
        Action(
            name="list_my_orders",
            description="The visitor's orders with their status and totals.",
            params=object_schema(),
            customer_specific=True,
            scopes=("read",),
            idempotent=True,
            handler=list_my_orders,
        ),
        Action(
            name="get_my_order",
            description="One of the visitor's orders with its items.",
            params=object_schema({"order_id": _ORDER_ID}, required=["order_id"]),
            customer_specific=True,
            scopes=("read",),
            idempotent=True,
            handler=get_my_order,
        ),
        Action(
            name="add_order_note",
            description="Pass a message from the visitor to the shop's staff as a private note on their order.",
            params=object_schema(
                {"order_id": _ORDER_ID, "note": {"type": "string", "minLength": 1, "maxLength": 2000}},
                required=["order_id", "note"],
            ),
            customer_specific=True,
            scopes=("read", "write"),
            idempotent=False,
            handler=add_order_note,
        ),
    ),
    docs_url="https://woocommerce.github.io/woocommerce-rest-api-docs/",
    broader_scopes=also_covered_by({"read": ("read_write",), "write": ("read_write",)}),
)
