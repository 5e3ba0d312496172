"""The Stripe vendor: its keys and their permissions, seed plan, errors, authentication and routes."""

from __future__ import annotations

import secrets
import string
from typing import Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, FaultReply, Handler, Vendor
from botctl.sandbox.wire import (
    basic_credentials,
    bearer_token,
    dumps,
)

from .data import (
    FULL_KEY,
    FULL_PERMISSIONS,
    LIMITED_KEY,
    LIMITED_PERMISSIONS,
    PRICES,
    SECRET_KEY,
    StripeStore,
    customer_record,
    invoice_record,
    subscription_record,
)
from .handlers import (
    cancel_subscription,
    error_response,
    get_account,
    get_balance,
    get_customer,
    get_invoice,
    get_subscription,
    list_customers,
    list_invoices,
    list_subscriptions,
    mask,
    search_customers,
    update_subscription,
    versioned,
    with_idempotency,
)


class Stripe(Vendor):
    name = "stripe"
    request_id_header = "Request-Id"

    def static_credentials(self) -> list[StaticCredential]:
        return [
            StaticCredential(FULL_KEY, FULL_PERMISSIONS),
            StaticCredential(LIMITED_KEY, LIMITED_PERMISSIONS),
            StaticCredential(SECRET_KEY, ("*",)),
        ]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "restricted_key",
            "api_key": FULL_KEY,
            "permissions": list(FULL_PERMISSIONS),
            "limited": {"api_key": LIMITED_KEY, "permissions": list(LIMITED_PERMISSIONS)},
            "secret_key": SECRET_KEY,
            "account_id": seed.STRIPE_ACCOUNT_ID,
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        return {
            "customer_id": seed.stripe_customer_id(customer),
            "invoices": [seed.stripe_invoice_id(customer, i) for i in seed.owned(customer)],
            "subscriptions": seed.stripe_subscription_ids(customer),
        }

    def seed_account(self) -> dict[str, Any]:
        return {"account_id": seed.STRIPE_ACCOUNT_ID}

    def new_store(self, state: SandboxState) -> StripeStore:
        store = StripeStore()
        now, t0 = state.anchor, state.anchor - 400 * DAY
        for n, c in enumerate(seed.CUSTOMERS):
            cust = customer_record(c, t0 + n * DAY)
            store.customers[cust["id"]] = cust
            subs = seed.stripe_subscription_ids(c)
            plans = (
                (("pro", "active"), ("basic", "trialing"), ("basic", "canceled"))
                if c is seed.ADA
                else (("pro", "active"),)
            )
            for m, sid in enumerate(subs):
                kind, status = plans[m]
                start = now - (200 - 40 * m) * DAY
                sub = subscription_record(sid, cust["id"], kind, status, start, now)
                if status == "trialing":
                    sub.update(trial_start=int(now - 5 * DAY), trial_end=int(now + 9 * DAY))
                if status == "canceled":
                    sub.update(
                        canceled_at=int(now - 20 * DAY),
                        ended_at=int(now - 20 * DAY),
                        cancellation_details={
                            "comment": None,
                            "feedback": "too_expensive",
                            "reason": "cancellation_requested",
                        },
                    )
                store.subscriptions[sid] = sub
            statuses = ("paid", "paid", "paid", "open", "draft") if c is seed.ADA else ("paid", "paid")
            for i in range(c.items):
                iid = seed.stripe_invoice_id(c, i)
                sub_id = subs[0] if subs else None
                amount = PRICES["pro"]["unit_amount"]
                inv = invoice_record(
                    iid, c, i + 1, statuses[i], amount, sub_id, now - (c.items - i) * 30 * DAY + n * 3600
                )
                store.invoices[iid] = inv
                if sub_id:
                    store.subscriptions[sub_id]["latest_invoice"] = iid
        return store

    def new_request_id(self) -> str:
        return "req_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(14))

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        if status == 429:
            err = {
                "code": "rate_limit",
                "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
                "message": "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits.",
                "type": "invalid_request_error",
            }
            headers = {"content-type": "application/json"}
        else:
            err = {"message": "An unknown error occurred", "type": "api_error"}
            # The SDKs obey Stripe-Should-Retry (STRIPE-PY _http_client.py); 5xx are retryable.
            headers = {"content-type": "application/json", "Stripe-Should-Retry": "true"}
        return FaultReply(status, headers, dumps({"error": err}))

    def not_found(self, request: Request) -> Response:
        path = self.vendor_path(request)
        return error_response(
            404,
            f"Unrecognized request URL ({request.method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        key = bearer_token(ctx.request)
        if key is None:
            basic = basic_credentials(ctx.request)
            key = basic[0] if basic else None
        if not key:
            return error_response(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/.",
            )
        check = ctx.state.tokens.check(self.name, key)
        if check.ok and check.token is not None:
            return check.token
        if check.status == "expired":
            return error_response(401, f"Expired API Key provided: {mask(key, 4)}", code="api_key_expired")
        return error_response(401, f"Invalid API Key provided: {mask(key, 4)}")

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        if "*" in granted or scope in granted or scope.replace("_read", "_write") in granted:
            return None
        key = ctx.principal.token if ctx.principal else ""
        return error_response(
            403,
            f"The provided key '{mask(key, 6)}' does not have the required permissions for this endpoint on account "
            f"'{seed.STRIPE_ACCOUNT_ID}'. Having the '{scope}' permission would allow this request to continue.",
        )

    def route(self, path: str, handler: Handler, methods: list[str], *, scope: str | None = None) -> Route:
        return Route(path, self.endpoint(versioned(handler), scope=scope), methods=methods)

    def build_routes(self) -> list[Route]:
        return [
            self.route("/v1/balance", get_balance, ["GET"], scope="rak_balance_read"),
            self.route("/v1/account", get_account, ["GET"], scope="rak_accounts_kyc_basic_read"),
            self.route("/v1/customers", list_customers, ["GET"], scope="rak_customer_read"),
            self.route("/v1/customers/search", search_customers, ["GET"], scope="rak_customer_read"),
            self.route("/v1/customers/{id}", get_customer, ["GET"], scope="rak_customer_read"),
            self.route("/v1/invoices", list_invoices, ["GET"], scope="rak_invoice_read"),
            self.route("/v1/invoices/{id}", get_invoice, ["GET"], scope="rak_invoice_read"),
            self.route("/v1/subscriptions", list_subscriptions, ["GET"], scope="rak_subscription_read"),
            self.route("/v1/subscriptions/{id}", get_subscription, ["GET"], scope="rak_subscription_read"),
            self.route(
                "/v1/subscriptions/{id}",
                with_idempotency(update_subscription),
                ["POST"],
                scope="rak_subscription_write",
            ),
            self.route(
                "/v1/subscriptions/{id}",
                with_idempotency(cancel_subscription),
                ["DELETE"],
                scope="rak_subscription_write",
            ),
        ]


VENDOR = Stripe()
