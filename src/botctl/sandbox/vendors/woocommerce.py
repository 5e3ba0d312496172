"""WooCommerce REST API v3 (docs/vendors.md §8): system status, customers, orders, order notes.

Auth: consumer key/secret as HTTP Basic, or as `consumer_key`/`consumer_secret` query params (the
real API accepts those over HTTPS; the sandbox is plain HTTP on loopback and accepts them too; it
does not implement OAuth 1.0a signatures). Lists: `page`/`per_page` (≤100) with `X-WP-Total`,
`X-WP-TotalPages` and a `Link` header (rel next/prev, as WordPress core emits).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.wire import basic_credentials, dumps, int_param, json_response, read_json, url_with

from .base import Ctx, FaultReply, Vendor, email_eq

ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
    "checkout-draft",
)
ADA_STATUSES = ("completed", "processing", "on-hold", "cancelled", "pending")
GRACE_STATUSES = ("completed", "processing")
MAX_PER_PAGE = 100
PRODUCTS = (
    (31, "Analytical Engine Poster", "AE-POSTER", "25.00"),
    (32, "Difference Engine Mug", "DE-MUG", "14.00"),
    (33, "Punch Card Notebook", "PC-NOTE", "9.00"),
)


@dataclass
class WooStore:
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_note_id: int = 900


def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _address(c: seed.Customer, n: int, *, billing: bool) -> dict[str, Any]:
    out = {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": "",
        "address_1": f"{10 + n} Analytical Row",
        "address_2": "",
        "city": "London",
        "state": "",
        "postcode": f"N{n + 1} 1AA",
        "country": "GB",
    }
    if billing:
        out.update(email=c.email, phone="")
    else:
        out["phone"] = ""
    return out


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
CONSUMER_KEY = "ck_0123456789abcdef0123456789abcdef01234567"
CONSUMER_SECRET = "cs_0123456789abcdef0123456789abcdef01234567"
RO_CONSUMER_KEY = "ck_fedcba9876543210fedcba9876543210fedcba98"
RO_CONSUMER_SECRET = "cs_fedcba9876543210fedcba9876543210fedcba98"


class WooCommerce(Vendor):
    name = "woocommerce"
    tenant_param = "store"

    # The connector's `site` setting; the sandbox names the store after the host's first label.
    connect_config = {"site": f"https://{seed.TENANT}.example"}

    def static_credentials(self) -> list[StaticCredential]:
        return [
            StaticCredential(
                CONSUMER_KEY, ("read", "write"), tenant=True, subject={"secret": CONSUMER_SECRET, "key_id": 1}
            ),
            StaticCredential(
                RO_CONSUMER_KEY, ("read",), tenant=True, subject={"secret": RO_CONSUMER_SECRET, "key_id": 2}
            ),
        ]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "basic_key_secret",
            "kind": "rest_api_key",
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "permissions": "read_write",
            "read_only": {"consumer_key": RO_CONSUMER_KEY, "consumer_secret": RO_CONSUMER_SECRET},
        }

    def connect_credential(self, described: dict[str, Any], *, limited: bool = False) -> dict[str, str] | None:
        pair = described["read_only"] if limited else described
        return {"api_key": pair["consumer_key"], "api_secret": pair["consumer_secret"]}

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        return {
            "customer_id": seed.woo_customer_id(customer),
            "orders": [seed.woo_order_id(customer, i) for i in seed.owned(customer)],
        }

    def seed_account(self) -> dict[str, Any]:
        return {"store": seed.TENANT}

    def new_store(self, state: SandboxState) -> WooStore:
        store = WooStore()
        t0 = state.anchor - 500 * DAY
        for n, c in enumerate(seed.CUSTOMERS):
            cid = seed.woo_customer_id(c)
            store.customers[cid] = {
                "id": cid,
                "date_created": _local(t0 + n * DAY),
                "date_created_gmt": _local(t0 + n * DAY),
                "date_modified": _local(t0 + n * DAY),
                "date_modified_gmt": _local(t0 + n * DAY),
                "email": c.email,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "role": "customer",
                "username": c.key,
                "billing": _address(c, n, billing=True),
                "shipping": _address(c, n, billing=False),
                "is_paying_customer": c.items > 0,
                "avatar_url": "https://secure.gravatar.com/avatar/?s=96&d=mm&r=g",
                "meta_data": [],
            }
        for n, (c, i) in enumerate(seed.sequence()):
            oid = seed.woo_order_id(c, i)
            status = (ADA_STATUSES if c is seed.ADA else GRACE_STATUSES)[i]
            created = state.anchor - (50 - 6 * n) * DAY + 12 * 3600
            product = PRODUCTS[n % 3]
            qty = 1 + n % 2
            line_total = f"{float(product[3]) * qty:.2f}"
            paid = status in ("completed", "processing")
            store.orders[oid] = {
                "id": oid,
                "parent_id": 0,
                "status": status,
                "currency": "GBP",
                "version": "9.3.3",
                "prices_include_tax": False,
                "date_created": _local(created),
                "date_modified": _local(created + DAY),
                "discount_total": "0.00",
                "discount_tax": "0.00",
                "shipping_total": "4.00",
                "shipping_tax": "0.00",
                "cart_tax": "0.00",
                "total": f"{float(line_total) + 4:.2f}",
                "total_tax": "0.00",
                "customer_id": seed.woo_customer_id(c),
                "order_key": f"wc_order_sandbox{oid}",
                "billing": _address(c, seed.CUSTOMERS.index(c), billing=True),
                "shipping": _address(c, seed.CUSTOMERS.index(c), billing=False),
                "payment_method": "stripe",
                "payment_method_title": "Credit card",
                "transaction_id": f"pi_sandbox{oid}" if paid else "",
                "customer_ip_address": "127.0.0.1",
                "customer_user_agent": "",
                "created_via": "checkout",
                "customer_note": "",
                "date_completed": _local(created + 3 * DAY) if status == "completed" else None,
                "date_paid": _local(created + 600) if paid else None,
                "cart_hash": "",
                "number": str(oid),
                "meta_data": [],
                "line_items": [
                    {
                        "id": oid * 10,
                        "name": product[1],
                        "product_id": product[0],
                        "variation_id": 0,
                        "quantity": qty,
                        "tax_class": "",
                        "subtotal": line_total,
                        "subtotal_tax": "0.00",
                        "total": line_total,
                        "total_tax": "0.00",
                        "taxes": [],
                        "meta_data": [],
                        "sku": product[2],
                        "price": float(product[3]),
                        "image": {"id": "", "src": ""},
                        "parent_name": None,
                    }
                ],
                "tax_lines": [],
                "shipping_lines": [
                    {
                        "id": oid * 10 + 1,
                        "method_title": "Flat rate",
                        "method_id": "flat_rate",
                        "instance_id": "1",
                        "total": "4.00",
                        "total_tax": "0.00",
                        "taxes": [],
                        "meta_data": [],
                    }
                ],
                "fee_lines": [],
                "coupon_lines": [],
                "refunds": [],
                "payment_url": f"https://shop.acme.example/checkout/order-pay/{oid}/?pay_for_order=true",
                "is_editable": status in ("pending", "on-hold"),
                "needs_payment": status == "pending",
                "needs_processing": True,
                "date_created_gmt": _local(created),
                "date_modified_gmt": _local(created + DAY),
                "date_completed_gmt": _local(created + 3 * DAY) if status == "completed" else None,
                "date_paid_gmt": _local(created + 600) if paid else None,
                "currency_symbol": "£",
            }
            store.notes[oid] = [
                {
                    "id": oid * 10 + 5,
                    "author": "WooCommerce",
                    "date_created": _local(created + 60),
                    "date_created_gmt": _local(created + 60),
                    "note": f"Order status changed from Pending payment to {status.title()}.",
                    "customer_note": False,
                }
            ]
        return store

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        if status == 500:
            # WordPress's fatal-error handler answers REST requests with this JSON body.
            body = {
                "code": "internal_server_error",
                "message": "<p>There has been a critical error on this website."
                '</p><p><a href="https://wordpress.org/documentation/article/faq-troubleshooting/">Learn more '
                "about troubleshooting WordPress.</a></p>",
                "data": {"status": 500},
                "additional_errors": [],
            }
            return FaultReply(500, {"content-type": "application/json; charset=UTF-8"}, dumps(body))
        # 429/502/503 come from the host, CDN or WAF in front of WordPress, not from WooCommerce
        # (docs/vendors.md §8.4: no rate limiting in the core REST API).
        titles = {
            429: "429 Too Many Requests",
            502: "502 Bad Gateway",
            503: "503 Service Temporarily Unavailable",
        }
        page = (
            f"<html><head><title>{titles[status]}</title></head><body><h1>{titles[status]}</h1></body></html>"
        )
        return FaultReply(status, {"content-type": "text/html"}, page.encode())

    def not_found(self, request: Request) -> Response:
        return _wp_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def tenant_not_found(self, request: Request, tenant: str) -> Response:
        return _wp_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        creds = basic_credentials(ctx.request)
        if creds is None and ctx.request.query_params.get("consumer_key"):
            creds = (
                ctx.request.query_params["consumer_key"],
                ctx.request.query_params.get("consumer_secret", ""),
            )
        if creds is None:
            return _cannot(ctx)
        key, secret = creds
        check = ctx.state.tokens.check(self.name, key)
        if not check.ok or check.token is None or check.token.tenant != ctx.tenant:
            return _wp_error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(str(check.token.subject.get("secret", "")), secret):
            return _wp_error(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        write = ctx.request.method not in ("GET", "HEAD", "OPTIONS")
        if write and "write" not in check.token.scopes:
            return _wp_error(
                401,
                "woocommerce_rest_authentication_error",
                "The API key provided does not have write permissions.",
            )
        if not write and "read" not in check.token.scopes:
            return _wp_error(
                401,
                "woocommerce_rest_authentication_error",
                "The API key provided does not have read permissions.",
            )
        return check.token

    def build_routes(self) -> list[Route]:
        return [
            self.route("/wp-json/wc/v3/system_status", system_status, ["GET"]),
            self.route("/wp-json/wc/v3/customers", list_customers, ["GET"]),
            self.route("/wp-json/wc/v3/customers/{customer_id:int}", get_customer, ["GET"]),
            self.route("/wp-json/wc/v3/orders", list_orders, ["GET"]),
            self.route("/wp-json/wc/v3/orders/{order_id:int}", get_order, ["GET"]),
            self.route("/wp-json/wc/v3/orders/{order_id:int}", update_order, ["PUT", "PATCH", "POST"]),
            self.route("/wp-json/wc/v3/orders/{order_id:int}/notes", list_notes, ["GET"]),
            self.route("/wp-json/wc/v3/orders/{order_id:int}/notes", create_note, ["POST"]),
        ]


VENDOR = WooCommerce()


def _wp_error(status: int, code: str, message: str, **data: Any) -> Response:
    return json_response(
        {"code": code, "message": message, "data": {"status": status, **data}},
        status,
        media_type="application/json; charset=UTF-8",
    )


def _cannot(ctx: Ctx) -> Response:
    """No credentials: WordPress treats the request as anonymous and the permission check fails."""
    method = ctx.request.method
    path = ctx.request.url.path
    if method == "POST":
        return _wp_error(
            401, "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."
        )
    if method in ("PUT", "PATCH"):
        return _wp_error(
            401, "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."
        )
    if path.rstrip("/").split("/")[-1].isdigit():
        return _wp_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
    return _wp_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")


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
        return _wp_error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): page, per_page",
            params={"page": "page is not of type integer."},
        )
    if per_page is not None and not 1 <= per_page <= MAX_PER_PAGE:
        return _wp_error(
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
        return _wp_error(
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
        return _wp_error(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
    return json_response(
        {**c, "_links": _links(ctx, "customers", c["id"])}, media_type="application/json; charset=UTF-8"
    )


async def list_orders(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    orders = list(ctx.store.orders.values())
    statuses = [s for s in (q.get("status") or "any").split(",") if s]
    bad = [s for s in statuses if s != "any" and s not in ORDER_STATUSES]
    if bad:
        return _wp_error(
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
            return _wp_error(
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
        return _wp_error(
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
        return _wp_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
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
        return _wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    if "status" in body:
        if body["status"] not in ORDER_STATUSES:
            return _wp_error(
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
    o["date_modified"] = o["date_modified_gmt"] = _local(ctx.now)
    return json_response(_render_order(ctx, o), media_type="application/json; charset=UTF-8")


def _add_note(ctx: Ctx, order_id: int, text: str, customer_note: bool, author: str) -> dict[str, Any]:
    note = {
        "id": ctx.store.next_note_id,
        "author": author,
        "date_created": _local(ctx.now),
        "date_created_gmt": _local(ctx.now),
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
        return _wp_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    body = body if isinstance(body, dict) else {}
    if not isinstance(body.get("note"), str) or not body["note"].strip():
        return _wp_error(400, "rest_missing_callback_param", "Missing parameter(s): note", params=["note"])
    customer_note = body.get("customer_note", False)
    if customer_note not in (True, False, "true", "false", 1, 0):
        return _wp_error(
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
