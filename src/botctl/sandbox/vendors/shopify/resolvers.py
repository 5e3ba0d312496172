"""The resolvers of Shopify's Admin GraphQL subset: orders, customers, nodes, shop, with Shopify's search
syntax, sorts and connections."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl.sandbox import graphql as gql
from botctl.sandbox import seed
from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import Ctx
from botctl.sandbox.wire import decode_cursor, encode_cursor, iso, parse_time

from .data import MAX_PAGE, RECENT_ORDER_WINDOW, ShopifyStore

if TYPE_CHECKING:
    pass


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
