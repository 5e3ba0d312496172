"""The WooCommerce vendor: its consumer keys, seed plan, errors, authentication and routes."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, FaultReply, Vendor
from botctl.sandbox.wire import basic_credentials, dumps

from .data import (
    ADA_STATUSES,
    CONSUMER_KEY,
    CONSUMER_SECRET,
    GRACE_STATUSES,
    PRODUCTS,
    RO_CONSUMER_KEY,
    RO_CONSUMER_SECRET,
    WooStore,
    address,
    local_time,
)
from .handlers import (
    cannot_response,
    create_note,
    get_customer,
    get_order,
    list_customers,
    list_notes,
    list_orders,
    system_status,
    update_order,
    wp_error,
)


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

    def connect_credential(
        self, described: dict[str, Any], *, limited: bool = False
    ) -> dict[str, str] | None:
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
                "date_created": local_time(t0 + n * DAY),
                "date_created_gmt": local_time(t0 + n * DAY),
                "date_modified": local_time(t0 + n * DAY),
                "date_modified_gmt": local_time(t0 + n * DAY),
                "email": c.email,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "role": "customer",
                "username": c.key,
                "billing": address(c, n, billing=True),
                "shipping": address(c, n, billing=False),
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
                "date_created": local_time(created),
                "date_modified": local_time(created + DAY),
                "discount_total": "0.00",
                "discount_tax": "0.00",
                "shipping_total": "4.00",
                "shipping_tax": "0.00",
                "cart_tax": "0.00",
                "total": f"{float(line_total) + 4:.2f}",
                "total_tax": "0.00",
                "customer_id": seed.woo_customer_id(c),
                "order_key": f"wc_order_sandbox{oid}",
                "billing": address(c, seed.CUSTOMERS.index(c), billing=True),
                "shipping": address(c, seed.CUSTOMERS.index(c), billing=False),
                "payment_method": "stripe",
                "payment_method_title": "Credit card",
                "transaction_id": f"pi_sandbox{oid}" if paid else "",
                "customer_ip_address": "127.0.0.1",
                "customer_user_agent": "",
                "created_via": "checkout",
                "customer_note": "",
                "date_completed": local_time(created + 3 * DAY) if status == "completed" else None,
                "date_paid": local_time(created + 600) if paid else None,
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
                "date_created_gmt": local_time(created),
                "date_modified_gmt": local_time(created + DAY),
                "date_completed_gmt": local_time(created + 3 * DAY) if status == "completed" else None,
                "date_paid_gmt": local_time(created + 600) if paid else None,
                "currency_symbol": "£",
            }
            store.notes[oid] = [
                {
                    "id": oid * 10 + 5,
                    "author": "WooCommerce",
                    "date_created": local_time(created + 60),
                    "date_created_gmt": local_time(created + 60),
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
        return wp_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def tenant_not_found(self, request: Request, tenant: str) -> Response:
        return wp_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        creds = basic_credentials(ctx.request)
        if creds is None and ctx.request.query_params.get("consumer_key"):
            creds = (
                ctx.request.query_params["consumer_key"],
                ctx.request.query_params.get("consumer_secret", ""),
            )
        if creds is None:
            return cannot_response(ctx)
        key, secret = creds
        check = ctx.state.tokens.check(self.name, key)
        if not check.ok or check.token is None or check.token.tenant != ctx.tenant:
            return wp_error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if not hmac.compare_digest(str(check.token.subject.get("secret", "")), secret):
            return wp_error(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        write = ctx.request.method not in ("GET", "HEAD", "OPTIONS")
        if write and "write" not in check.token.scopes:
            return wp_error(
                401,
                "woocommerce_rest_authentication_error",
                "The API key provided does not have write permissions.",
            )
        if not write and "read" not in check.token.scopes:
            return wp_error(
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
