"""WooCommerce's endpoints: system status, customers, orders, order notes."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.vendors.base import Ctx, email_eq
from botctl.sandbox.wire import int_param, json_response, read_json, url_with

from .data import MAX_PER_PAGE, ORDER_STATUSES, local_time


def wp_error(status: int, code: str, message: str, **data: Any) -> Response:
    return json_response(
        {"code": code, "message": message, "data": {"status": status, **data}},
        status,
        media_type="application/json; charset=UTF-8",
    )


def cannot_response(ctx: Ctx) -> Response:
    """No credentials: WordPress treats the request as anonymous and the permission check fails."""
    method = ctx.request.method
    path = ctx.request.url.path
    if method == "POST":
        return wp_error(
            401, "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."
        )
    if method in ("PUT", "PATCH"):
        return wp_error(
            401, "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."
        )
    if path.rstrip("/").split("/")[-1].isdigit():
        return wp_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
    return wp_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")


def _api_base(ctx: Ctx) -> str:
    return f"{str(ctx.request.base_url).rstrip('/')}/woocommerce/{ctx.tenant}/wp-json/wc/v3"


def _links(ctx: Ctx, kind: str, oid: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    base = _api_base(ctx)
    links: dict[str, Any] = {
        "self": [{"href": f"{base}/{kind}/{oid}"}],
        "collection": [{"href": f"{base}/{kind}"}],
    }
    links.update(extra or {})
    return links


def _render_order(ctx: Ctx, o: dict[str, Any]) -> dict[str, Any]:
    extra = (
        {"customer": [{"href": f"{_api_base(ctx)}/customers/{o['customer_id']}"}]} if o["customer_id"] else {}
    )
    return {**o, "_links": _links(ctx, "orders", o["id"], extra)}


def _paginate(ctx: Ctx, items: list[dict[str, Any]]) -> Response:
    q = ctx.request.query_params
    try:
        page = int_param(q.get("page")) or 1
        per_page = int_param(q.get("per_page"))
    except ValueError:
        return wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): page, per_page",
            params={"page": "page is not of type integer."},
        )
    if per_page is not None and not 1 <= per_page <= MAX_PER_PAGE:
        return wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): per_page",
            params={"per_page": f"per_page must be between 1 (inclusive) and {MAX_PER_PAGE} (inclusive)"},
            details={
                "per_page": {
                    "code": "rest_out_of_bounds",
                    "message": f"per_page must be between 1 (inclusive) and {MAX_PER_PAGE} (inclusive)",
                    "data": None,
                }
            },
        )
    if page < 1:
        return wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): page",
            params={"page": "page must be greater than or equal to 1"},
        )
    size = ctx.state.page_size(per_page, 10, MAX_PER_PAGE)
    total = len(items)
    pages = -(-total // size) if total else 0
    chunk = items[(page - 1) * size : page * size]
    links = []
    if page > 1:
        links.append(f'<{url_with(ctx.request, page=page - 1)}>; rel="prev"')
    if page < pages:
        links.append(f'<{url_with(ctx.request, page=page + 1)}>; rel="next"')
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    if links:
        headers["Link"] = ", ".join(links)
    return json_response(chunk, headers=headers, media_type="application/json; charset=UTF-8")


# --- handlers ------------------------------------------------------------------------------------


async def system_status(ctx: Ctx) -> Response:
    home = f"{str(ctx.request.base_url).rstrip('/')}/woocommerce/{ctx.tenant}"
    return json_response(
        {
            "environment": {
                "home_url": home,
                "site_url": home,
                "version": "9.3.3",
                "wp_version": "6.6.2",
                "wp_multisite": False,
                "wp_debug_mode": False,
                "language": "en_GB",
                "external_object_cache": None,
                "server_info": "botctl-sandbox",
                "php_version": "8.2.0",
                "default_timezone": "UTC",
                "secure_connection": False,
                "hide_errors": True,
            },
            "database": {"wc_database_version": "9.3.3", "database_prefix": "wp_"},
            "active_plugins": [
                {
                    "plugin": "woocommerce/woocommerce.php",
                    "name": "WooCommerce",
                    "version": "9.3.3",
                    "author_name": "Automattic",
                }
            ],
            "inactive_plugins": [],
            "dropins_mu_plugins": {"dropins": [], "mu_plugins": []},
            "theme": {
                "name": "Storefront",
                "version": "4.6.0",
                "is_child_theme": False,
                "has_woocommerce_support": True,
            },
            "settings": {
                "api_enabled": True,
                "force_ssl": False,
                "currency": "GBP",
                "currency_symbol": "£",
                "currency_position": "left",
                "thousand_separator": ",",
                "decimal_separator": ".",
                "number_of_decimals": 2,
                "geolocation_enabled": False,
                "taxonomies": {},
            },
            "security": {"secure_connection": False, "hide_errors": True},
            "pages": [],
        },
        media_type="application/json; charset=UTF-8",
    )


async def list_customers(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    role = q.get("role", "customer")
    customers = [c for c in ctx.store.customers.values() if role == "all" or c["role"] == role]
    if q.get("email"):
        customers = [c for c in customers if email_eq(c["email"], q["email"])]
    if q.get("search"):
        needle = q["search"].lower()
        customers = [
            c
            for c in customers
            if needle in (c["email"] + " " + c["first_name"] + " " + c["last_name"]).lower()
        ]
    customers.sort(key=lambda c: c["first_name"] + " " + c["last_name"], reverse=q.get("order") == "desc")
    return _paginate(ctx, [{**c, "_links": _links(ctx, "customers", c["id"])} for c in customers])


async def get_customer(ctx: Ctx) -> Response:
    c = ctx.store.customers.get(ctx.request.path_params["customer_id"])
    if c is None:
        return wp_error(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
    return json_response(
        {**c, "_links": _links(ctx, "customers", c["id"])}, media_type="application/json; charset=UTF-8"
    )


async def list_orders(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    orders = list(ctx.store.orders.values())
    statuses = [s for s in (q.get("status") or "any").split(",") if s]
    bad = [s for s in statuses if s != "any" and s not in ORDER_STATUSES]
    if bad:
        return wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): status",
            params={"status": f"status[0] is not one of any, {', '.join(ORDER_STATUSES)}."},
        )
    if "any" in statuses:
        orders = [o for o in orders if o["status"] not in ("trash", "checkout-draft")]
    else:
        orders = [o for o in orders if o["status"] in statuses]
    if q.get("customer") is not None and q.get("customer") != "":
        try:
            cid = int_param(q["customer"])
        except ValueError:
            return wp_error(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): customer",
                params={"customer": "customer is not of type integer."},
            )
        orders = [o for o in orders if o["customer_id"] == cid]
    if q.get("search"):
        needle = q["search"].lower()
        orders = [
            o
            for o in orders
            if needle
            in (
                o["billing"]["email"]
                + " "
                + o["billing"]["first_name"]
                + " "
                + o["billing"]["last_name"]
                + " "
                + o["number"]
            ).lower()
        ]
    orderby = q.get("orderby", "date")
    keys = {
        "date": lambda o: (o["date_created_gmt"], o["id"]),
        "id": lambda o: o["id"],
        "modified": lambda o: (o["date_modified_gmt"], o["id"]),
    }
    if orderby not in keys:
        return wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): orderby",
            params={"orderby": "orderby is not one of date, id, include, title, slug, modified."},
        )
    orders.sort(key=keys[orderby], reverse=q.get("order", "desc") != "asc")
    return _paginate(ctx, [_render_order(ctx, o) for o in orders])


def _order_or_404(ctx: Ctx) -> dict[str, Any] | Response:
    o = ctx.store.orders.get(ctx.request.path_params["order_id"])
    if o is None:
        return wp_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
    return o


async def get_order(ctx: Ctx) -> Response:
    o = _order_or_404(ctx)
    if isinstance(o, Response):
        return o
    return json_response(_render_order(ctx, o), media_type="application/json; charset=UTF-8")


async def update_order(ctx: Ctx) -> Response:
    o = _order_or_404(ctx)
    if isinstance(o, Response):
        return o
    body, ok = await read_json(ctx.request)
    if not ok or not isinstance(body, dict):
        return wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    if "status" in body:
        if body["status"] not in ORDER_STATUSES:
            return wp_error(
                400,
                "rest_invalid_param",
                "Invalid parameter(s): status",
                params={"status": f"status is not one of {', '.join(ORDER_STATUSES)}."},
            )
        if body["status"] != o["status"]:
            _add_note(
                ctx,
                o["id"],
                f"Order status changed from {o['status'].title()} to {body['status'].title()}.",
                False,
                "WooCommerce",
            )
            o["status"] = body["status"]
    if isinstance(body.get("customer_note"), str):
        o["customer_note"] = body["customer_note"]
    o["date_modified"] = o["date_modified_gmt"] = local_time(ctx.now)
    return json_response(_render_order(ctx, o), media_type="application/json; charset=UTF-8")


def _add_note(ctx: Ctx, order_id: int, text: str, customer_note: bool, author: str) -> dict[str, Any]:
    note = {
        "id": ctx.store.next_note_id,
        "author": author,
        "date_created": local_time(ctx.now),
        "date_created_gmt": local_time(ctx.now),
        "note": text,
        "customer_note": customer_note,
    }
    ctx.store.next_note_id += 1
    ctx.store.notes.setdefault(order_id, []).append(note)
    return note


def _render_note(ctx: Ctx, order_id: int, note: dict[str, Any]) -> dict[str, Any]:
    base = _api_base(ctx)
    return {
        **note,
        "_links": {
            "self": [{"href": f"{base}/orders/{order_id}/notes/{note['id']}"}],
            "collection": [{"href": f"{base}/orders/{order_id}/notes"}],
            "up": [{"href": f"{base}/orders/{order_id}"}],
        },
    }


async def list_notes(ctx: Ctx) -> Response:
    o = _order_or_404(ctx)
    if isinstance(o, Response):
        return o
    kind = ctx.request.query_params.get("type", "any")
    notes = list(reversed(ctx.store.notes.get(o["id"], [])))
    if kind == "customer":
        notes = [n for n in notes if n["customer_note"]]
    elif kind == "internal":
        notes = [n for n in notes if not n["customer_note"]]
    return json_response(
        [_render_note(ctx, o["id"], n) for n in notes], media_type="application/json; charset=UTF-8"
    )


async def create_note(ctx: Ctx) -> Response:
    o = _order_or_404(ctx)
    if isinstance(o, Response):
        return o
    body, ok = await read_json(ctx.request)
    if not ok:
        return wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    body = body if isinstance(body, dict) else {}
    if not isinstance(body.get("note"), str) or not body["note"].strip():
        return wp_error(400, "rest_missing_callback_param", "Missing parameter(s): note", params=["note"])
    customer_note = body.get("customer_note", False)
    if customer_note not in (True, False, "true", "false", 1, 0):
        return wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): customer_note",
            params={"customer_note": "customer_note is not of type boolean."},
        )
    author = "WooCommerce" if not body.get("added_by_user") else seed.ACCOUNT_NAME
    note = _add_note(ctx, o["id"], body["note"], customer_note in (True, "true", 1), author)
    base = _api_base(ctx)
    return json_response(
        _render_note(ctx, o["id"], note),
        201,
        {"Location": f"{base}/orders/{o['id']}/notes/{note['id']}"},
        media_type="application/json; charset=UTF-8",
    )
