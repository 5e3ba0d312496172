"""Stripe API v1 (docs/vendors.md §6): balance, account, customers (list + search), invoices,
subscriptions (list, get, update, cancel).

Like the real API: form-encoded request bodies with bracket notation, restricted keys with
per-resource permissions (403 naming the missing `rak_*` permission), `Idempotency-Key` replay,
`Request-Id` on every response, `Stripe-Should-Retry` on errors, and shapes that follow the
`Stripe-Version` header: before 2025-03-31 (basil) subscriptions carry top-level
`current_period_*` and invoices `subscription`/`paid`; from basil on those live on the items /
`parent.subscription_details`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.wire import (
    basic_credentials,
    bearer_token,
    decode_brackets,
    decode_cursor,
    dumps,
    encode_cursor,
    json_response,
    read_form,
)

from .base import Ctx, FaultReply, Handler, Vendor

DEFAULT_VERSION = "2025-03-31.basil"
BASIL = "2025-03-31"
MAX_LIMIT = 100
SUBSCRIPTION_STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
IDEMPOTENCY_TTL = DAY


@dataclass
class SavedResponse:
    fingerprint: tuple[str, str, str]
    status: int
    body: bytes
    request_id: str
    created: float


@dataclass
class StripeStore:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, SavedResponse] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)


PRICES = {
    "basic": {
        "id": "price_SandboxBasic01",
        "product": "prod_SandboxBasic1",
        "unit_amount": 900,
        "nickname": "Basic",
    },
    "pro": {
        "id": "price_SandboxPro0001",
        "product": "prod_SandboxPro001",
        "unit_amount": 2900,
        "nickname": "Pro",
    },
}


def _price(kind: str, created: float) -> dict[str, Any]:
    p = PRICES[kind]
    return {
        "id": p["id"],
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": int(created),
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": p["nickname"],
        "product": p["product"],
        "recurring": {
            "aggregate_usage": None,
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": p["unit_amount"],
        "unit_amount_decimal": str(p["unit_amount"]),
    }


def _customer(c: seed.Customer, created: float) -> dict[str, Any]:
    return {
        "id": seed.stripe_customer_id(c),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": int(created),
        "currency": "usd" if c.items else None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": c.email,
        "invoice_prefix": c.key.upper()[:4] + "0001",
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": c.name,
        "next_invoice_sequence": c.items + 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _subscription(
    sid: str, customer_id: str, kind: str, status: str, start: float, now: float
) -> dict[str, Any]:
    period_start = start + ((now - start) // (30 * DAY)) * 30 * DAY
    item = {
        "id": "si_" + sid[4:],
        "object": "subscription_item",
        "created": int(start),
        "current_period_start": int(period_start),
        "current_period_end": int(period_start + 30 * DAY),
        "discounts": [],
        "metadata": {},
        "price": _price(kind, start - DAY),
        "quantity": 1,
        "subscription": sid,
        "tax_rates": [],
    }
    return {
        "id": sid,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": int(start),
        "billing_cycle_anchor_config": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": int(start),
        "currency": "usd",
        "customer": customer_id,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [item],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={sid}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": int(start),
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def _invoice(
    iid: str, c: seed.Customer, n: int, status: str, amount: int, sub: str | None, created: float
) -> dict[str, Any]:
    paid = status == "paid"
    number = None if status == "draft" else f"{c.key.upper()[:4]}0001-{n:04d}"
    return {
        "id": iid,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Acme",
        "account_tax_ids": None,
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 1 if status in ("paid", "open") else 0,
        "attempted": status in ("paid", "open"),
        "auto_advance": status in ("draft", "open"),
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": "subscription_cycle" if sub else "manual",
        "collection_method": "charge_automatically",
        "created": int(created),
        "currency": "usd",
        "custom_fields": None,
        "customer": seed.stripe_customer_id(c),
        "customer_address": None,
        "customer_email": c.email,
        "customer_name": c.name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None if status == "draft" else int(created + 3600),
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None
        if status == "draft"
        else f"https://invoice.stripe.com/i/acct_sandbox/test_{iid}",
        "invoice_pdf": None
        if status == "draft"
        else f"https://pay.stripe.com/invoice/acct_sandbox/test_{iid}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"il_{iid[3:]}",
                    "object": "line_item",
                    "amount": amount,
                    "currency": "usd",
                    "description": "1 × Subscription (at $%.2f / month)" % (amount / 100),
                    "discount_amounts": [],
                    "discountable": True,
                    "discounts": [],
                    "invoice": iid,
                    "livemode": False,
                    "metadata": {},
                    "period": {"end": int(created + 30 * DAY), "start": int(created)},
                    "quantity": 1,
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{iid}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": sub},
            "type": "subscription_details",
        }
        if sub
        else None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": int(created),
        "period_start": int(created - 30 * DAY),
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": None if status == "draft" else int(created + 3600),
            "marked_uncollectible_at": None,
            "paid_at": int(created + 7200) if paid else None,
            "voided_at": None,
        },
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "test_clock": None,
        "total": amount,
        "total_discount_amounts": [],
        "total_excluding_tax": amount,
        "total_taxes": [],
        "webhooks_delivered_at": int(created),
    }


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
# Restricted-key permissions use the names Stripe's 403 message cites ("Having the
# 'rak_subscription_read' permission would allow this request to continue."). Write implies read.
FULL_PERMISSIONS = (
    "rak_balance_read",
    "rak_accounts_kyc_basic_read",
    "rak_customer_write",
    "rak_invoice_read",
    "rak_subscription_write",
    "rak_charge_read",
    "rak_refund_read",
)
LIMITED_PERMISSIONS = ("rak_customer_read", "rak_subscription_read")
FULL_KEY = "rk_test_51SandboxAcmeFullAccess0000000000000000000000000000000000000000000000000000FULL"
LIMITED_KEY = "rk_test_51SandboxAcmeLimitedAccess00000000000000000000000000000000000000000000000LTD"
SECRET_KEY = "sk_test_51SandboxAcmeSecretKey000000000000000000000000000000000000000000000000000SEC"


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
            cust = _customer(c, t0 + n * DAY)
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
                sub = _subscription(sid, cust["id"], kind, status, start, now)
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
                inv = _invoice(
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
        return _error(
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
            return _error(
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
            return _error(401, f"Expired API Key provided: {_mask(key, 4)}", code="api_key_expired")
        return _error(401, f"Invalid API Key provided: {_mask(key, 4)}")

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        if "*" in granted or scope in granted or scope.replace("_read", "_write") in granted:
            return None
        key = ctx.principal.token if ctx.principal else ""
        return _error(
            403,
            f"The provided key '{_mask(key, 6)}' does not have the required permissions for this endpoint on account "
            f"'{seed.STRIPE_ACCOUNT_ID}'. Having the '{scope}' permission would allow this request to continue.",
        )

    def route(self, path: str, handler: Handler, methods: list[str], *, scope: str | None = None) -> Route:
        return Route(path, self.endpoint(_versioned(handler), scope=scope), methods=methods)

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
                _idempotent(update_subscription),
                ["POST"],
                scope="rak_subscription_write",
            ),
            self.route(
                "/v1/subscriptions/{id}",
                _idempotent(cancel_subscription),
                ["DELETE"],
                scope="rak_subscription_write",
            ),
        ]


VENDOR = Stripe()


class StripeError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = _error(status, message, **extra)


def _mask(key: str, keep: int) -> str:
    prefix = key[:8] if key[:3] in ("sk_", "rk_", "pk_") else ""
    rest = key[len(prefix) :]
    if len(rest) <= keep:
        return prefix + rest
    return prefix + "*" * (len(rest) - keep) + rest[-keep:]


def _error(status: int, message: str, *, type_: str = "invalid_request_error", **extra: Any) -> Response:
    err = {k: v for k, v in extra.items() if v is not None}
    err.update(message=message, type=type_)
    if "code" in err and "doc_url" not in err:
        err["doc_url"] = f"https://stripe.com/docs/error-codes/{str(err['code']).replace('_', '-')}"
    retry = "true" if status == 409 or status >= 500 else "false"
    return json_response(
        {"error": err}, status, {"Stripe-Should-Retry": retry}, media_type="application/json"
    )


def _missing(kind: str, oid: str, param: str = "id") -> Response:
    return _error(404, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


def _version(ctx: Ctx) -> str:
    return ctx.request.scope.get("stripe.version", DEFAULT_VERSION)


def _versioned(handler: Handler) -> Handler:
    async def run(ctx: Ctx) -> Response:
        raw = ctx.request.headers.get("stripe-version")
        if raw is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", raw.strip()):
            return _error(400, f"Invalid Stripe API version: {raw}", param="stripe_version")
        ctx.request.scope["stripe.version"] = raw.strip() if raw else DEFAULT_VERSION
        try:
            response = await handler(ctx)
        except StripeError as exc:
            response = exc.response
        response.headers["Stripe-Version"] = _version(ctx)
        return response

    run.__name__ = handler.__name__
    return run


def _idempotent(handler: Handler) -> Handler:
    """Idempotency-Key: replay the saved response for the same key and parameters; a different
    request under the same key is an idempotency_error (docs.stripe.com/api/idempotent_requests).
    Responses to requests rejected before execution (4xx) are not saved, like Stripe's."""

    async def run(ctx: Ctx) -> Response:
        key = ctx.request.headers.get("idempotency-key")
        if not key:
            return await handler(ctx)
        if len(key) > 255:
            return _error(400, "Idempotency-Key must be at most 255 characters", type_="idempotency_error")
        store: StripeStore = ctx.store
        for k in [k for k, v in store.idempotency.items() if ctx.now - v.created > IDEMPOTENCY_TTL]:
            del store.idempotency[k]
        raw = await ctx.request.body()
        canonical = sorted(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        fingerprint = (
            ctx.request.method,
            VENDOR.vendor_path(ctx.request),
            hashlib.sha256(dumps(canonical)).hexdigest(),
        )
        saved = store.idempotency.get(key)
        if saved is not None:
            if saved.fingerprint[:2] != fingerprint[:2]:
                return _error(
                    400,
                    f"Keys for idempotent requests can only be used for the same endpoint they were "
                    f"first used for ('{saved.fingerprint[0]} {saved.fingerprint[1]}' vs "
                    f"'{fingerprint[0]} {fingerprint[1]}'). Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
            if saved.fingerprint != fingerprint:
                return _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{key}' if you meant to execute a "
                    "different request.",
                    type_="idempotency_error",
                )
            return Response(
                saved.body,
                status_code=saved.status,
                media_type="application/json",
                headers={
                    "Idempotency-Key": key,
                    "Idempotent-Replayed": "true",
                    "Original-Request": saved.request_id,
                },
            )
        if key in store.in_flight:
            return _error(
                409,
                f"There is currently another in-progress request using this Idempotent Key (that "
                f"probably means you submitted twice, and the other request is still going through): "
                f"{key}. Please try again later.",
                type_="idempotency_error",
            )
        store.in_flight.add(key)
        try:
            response = await handler(ctx)
        finally:
            store.in_flight.discard(key)
        if response.status_code < 400 or response.status_code >= 500:
            store.idempotency[key] = SavedResponse(
                fingerprint,
                response.status_code,
                bytes(response.body),
                ctx.request.scope.get("sandbox.request_id", ""),
                ctx.now,
            )
        response.headers["Idempotency-Key"] = key
        return response

    run.__name__ = handler.__name__
    return run


def _query(ctx: Ctx) -> dict[str, Any]:
    return decode_brackets(list(ctx.request.query_params.multi_items()))


def _expand(ctx: Ctx, obj: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    out = dict(obj)
    for path in paths:
        head, _, rest = path.partition(".")
        value = out.get(head)
        if isinstance(value, str):
            target = (
                ctx.store.customers.get(value)
                or ctx.store.invoices.get(value)
                or ctx.store.subscriptions.get(value)
            )
            if target is None:
                continue
            out[head] = _render(ctx, target, [rest] if rest else [])
        elif isinstance(value, dict) and rest:
            out[head] = _expand(ctx, value, [rest])
    return out


def _render(ctx: Ctx, obj: dict[str, Any], expand: list[str] | None = None) -> dict[str, Any]:
    out = dict(obj)
    legacy = _version(ctx)[:10] < BASIL
    if legacy and out["object"] == "subscription":
        item = out["items"]["data"][0]
        out["current_period_start"] = item["current_period_start"]
        out["current_period_end"] = item["current_period_end"]
    if legacy and out["object"] == "invoice":
        parent = out.get("parent") or {}
        out["subscription"] = (parent.get("subscription_details") or {}).get("subscription")
        out["paid"] = out["status"] == "paid"
        out.pop("parent", None)
    return _expand(ctx, out, expand or [])


def _expand_param(q: dict[str, Any], prefix: str = "") -> list[str]:
    raw = q.get("expand") or []
    paths = raw if isinstance(raw, list) else [raw]
    if prefix:
        return [p[len(prefix) :] for p in paths if isinstance(p, str) and p.startswith(prefix)]
    return [p for p in paths if isinstance(p, str)]


def _list(ctx: Ctx, kind: str, items: list[dict[str, Any]], url: str) -> Response:
    """Stripe list object: newest first, `limit` + `starting_after`/`ending_before`, `has_more`."""
    q = _query(ctx)
    limit_raw = q.get("limit")
    limit = None
    if limit_raw is not None:
        if not str(limit_raw).isdigit():
            return _error(400, f"Invalid integer: {limit_raw}", param="limit")
        limit = int(limit_raw)
        if not 1 <= limit <= MAX_LIMIT:
            return _error(
                400,
                f"This value must be less than or equal to {MAX_LIMIT} (it currently is '{limit}').",
                param="limit",
            )
    size = ctx.state.page_size(limit, 10, MAX_LIMIT)
    items = sorted(items, key=lambda o: (o["created"], o["id"]), reverse=True)
    ids = [o["id"] for o in items]
    if q.get("starting_after"):
        if q["starting_after"] not in ids:
            return _missing(kind, str(q["starting_after"]), "starting_after")
        start = ids.index(q["starting_after"]) + 1
        chunk = items[start : start + size]
        has_more = start + size < len(items)
    elif q.get("ending_before"):
        if q["ending_before"] not in ids:
            return _missing(kind, str(q["ending_before"]), "ending_before")
        end = ids.index(q["ending_before"])
        chunk = items[max(0, end - size) : end]
        has_more = end - size > 0
    else:
        chunk = items[:size]
        has_more = size < len(items)
    expand = _expand_param(q, "data.")
    return json_response(
        {
            "object": "list",
            "data": [_render(ctx, o, expand) for o in chunk],
            "has_more": has_more,
            "url": url,
        },
        media_type="application/json",
    )


def _bool(value: Any, param: str) -> bool:
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise StripeError(400, f"Invalid boolean: {value}", param=param)


# --- handlers ------------------------------------------------------------------------------------


async def get_balance(ctx: Ctx) -> Response:
    return json_response(
        {
            "object": "balance",
            "available": [{"amount": 1284500, "currency": "usd", "source_types": {"card": 1284500}}],
            "connect_reserved": [{"amount": 0, "currency": "usd"}],
            "livemode": False,
            "pending": [{"amount": 56700, "currency": "usd", "source_types": {"card": 56700}}],
            "refund_and_dispute_prefunding": {
                "available": [{"amount": 0, "currency": "usd"}],
                "pending": [{"amount": 0, "currency": "usd"}],
            },
        },
        media_type="application/json",
    )


async def get_account(ctx: Ctx) -> Response:
    return json_response(
        {
            "id": seed.STRIPE_ACCOUNT_ID,
            "object": "account",
            "business_profile": {
                "mcc": "5734",
                "name": "Acme",
                "support_email": seed.ACCOUNT_EMAIL,
                "support_phone": None,
                "support_url": None,
                "url": "https://acme.example",
            },
            "business_type": "company",
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "country": "US",
            "created": int(ctx.state.anchor - 1000 * DAY),
            "default_currency": "usd",
            "details_submitted": True,
            "email": seed.ACCOUNT_EMAIL,
            "metadata": {},
            "payouts_enabled": True,
            "settings": {"dashboard": {"display_name": "Acme", "timezone": "Europe/London"}},
            "type": "standard",
        },
        media_type="application/json",
    )


async def list_customers(ctx: Ctx) -> Response:
    q = _query(ctx)
    customers = list(ctx.store.customers.values())
    if "email" in q:
        # Exact and case-sensitive (docs/vendors.md §6.3).
        customers = [c for c in customers if c["email"] == q["email"]]
    return _list(ctx, "customer", customers, "/v1/customers")


_CLAUSE = re.compile(
    r"""\s*(-?)(metadata\[['"]([^'"]+)['"]\]|[a-z_]+)\s*(:|~|>=|<=|>|<)\s*(?:'([^']*)'|"([^"]*)"|(\d+))\s*"""
)


def _search_filter(query: str) -> list[list[tuple[bool, str, str, str]]]:
    """Parse Stripe's search query language into OR-groups of AND-clauses. Raises ValueError."""
    if re.search(r"\bAND\b", query) and re.search(r"\bOR\b", query):
        raise ValueError("AND and OR cannot be combined in one query")
    joiner = "OR" if re.search(r"\bOR\b", query) else "AND"
    clauses = []
    for part in re.split(rf"\s{joiner}\s", query):
        m = _CLAUSE.fullmatch(part)
        if not m:
            raise ValueError(f"could not parse '{part.strip()}'")
        neg, fieldname, meta_key, op, v1, v2, v3 = m.groups()
        name = f"metadata.{meta_key}" if meta_key else fieldname
        clauses.append((bool(neg), name, op, next(v for v in (v1, v2, v3) if v is not None)))
    return [[c] for c in clauses] if joiner == "OR" else [clauses]


def _clause_ok(obj: dict[str, Any], clause: tuple[bool, str, str, str]) -> bool:
    neg, name, op, value = clause
    if name.startswith("metadata."):
        actual: Any = obj.get("metadata", {}).get(name.split(".", 1)[1])
    else:
        actual = obj.get(name)
    if op == ":":
        hit = actual is not None and str(actual).lower() == value.lower()
    elif op == "~":
        hit = actual is not None and len(value) >= 3 and value.lower() in str(actual).lower()
    else:
        try:
            a, b = float(actual), float(value)
        except (TypeError, ValueError):
            return False
        hit = {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
    return hit != neg


async def search_customers(ctx: Ctx) -> Response:
    q = _query(ctx)
    query = q.get("query")
    if not query:
        return _error(400, "Missing required param: query.", code="parameter_missing", param="query")
    try:
        groups = _search_filter(str(query))
    except ValueError as exc:
        return _error(
            400,
            f"Invalid query: {exc}. See https://stripe.com/docs/search#search-query-language.",
            param="query",
        )
    allowed = {"email", "name", "phone", "created"}
    for group in groups:
        for _, name, _, _ in group:
            if not name.startswith("metadata.") and name not in allowed:
                return _error(
                    400,
                    f"Field `{name}` is an unsupported search field for resource `customers`. See "
                    "http://stripe.com/docs/search#query-fields-for-customers for a list of supported "
                    "fields.",
                    param="query",
                )
    hits = [
        c for c in ctx.store.customers.values() if any(all(_clause_ok(c, cl) for cl in g) for g in groups)
    ]
    hits.sort(key=lambda c: (c["created"], c["id"]), reverse=True)
    limit_raw = q.get("limit")
    if limit_raw is not None and (not str(limit_raw).isdigit() or not 1 <= int(limit_raw) <= MAX_LIMIT):
        return _error(400, f"Invalid limit: {limit_raw}", param="limit")
    size = ctx.state.page_size(int(limit_raw) if limit_raw else None, 10, MAX_LIMIT)
    start = 0
    if q.get("page"):
        data = decode_cursor(str(q["page"]))
        if not data or not isinstance(data.get("o"), int):
            return _error(400, "Invalid page token", param="page")
        start = data["o"]
    chunk = hits[start : start + size]
    more = start + size < len(hits)
    return json_response(
        {
            "object": "search_result",
            "data": [_render(ctx, c, _expand_param(q, "data.")) for c in chunk],
            "has_more": more,
            "next_page": encode_cursor({"o": start + size}) if more else None,
            "url": "/v1/customers/search",
        },
        media_type="application/json",
    )


async def get_customer(ctx: Ctx) -> Response:
    cid = ctx.request.path_params["id"]
    c = ctx.store.customers.get(cid)
    return (
        json_response(_render(ctx, c, _expand_param(_query(ctx))), media_type="application/json")
        if c
        else _missing("customer", cid)
    )


async def list_invoices(ctx: Ctx) -> Response:
    q = _query(ctx)
    invoices = list(ctx.store.invoices.values())
    if q.get("customer"):
        invoices = [i for i in invoices if i["customer"] == q["customer"]]
    if q.get("status"):
        if q["status"] not in INVOICE_STATUSES:
            return _error(
                400, f"Invalid status: must be one of {', '.join(INVOICE_STATUSES)}", param="status"
            )
        invoices = [i for i in invoices if i["status"] == q["status"]]
    if q.get("subscription"):
        invoices = [
            i
            for i in invoices
            if ((i.get("parent") or {}).get("subscription_details") or {}).get("subscription")
            == q["subscription"]
        ]
    return _list(ctx, "invoice", invoices, "/v1/invoices")


async def get_invoice(ctx: Ctx) -> Response:
    iid = ctx.request.path_params["id"]
    inv = ctx.store.invoices.get(iid)
    return (
        json_response(_render(ctx, inv, _expand_param(_query(ctx))), media_type="application/json")
        if inv
        else _missing("invoice", iid)
    )


async def list_subscriptions(ctx: Ctx) -> Response:
    q = _query(ctx)
    subs = list(ctx.store.subscriptions.values())
    status = q.get("status")
    if status is not None and status not in SUBSCRIPTION_STATUSES:
        return _error(
            400, f"Invalid status: must be one of {', '.join(SUBSCRIPTION_STATUSES)}", param="status"
        )
    if status is None:
        # "By default, returns a list of subscriptions that have not been canceled."
        subs = [s for s in subs if s["status"] not in ("canceled", "incomplete_expired")]
    elif status == "ended":
        subs = [s for s in subs if s["status"] in ("canceled", "incomplete_expired")]
    elif status != "all":
        subs = [s for s in subs if s["status"] == status]
    if q.get("customer"):
        subs = [s for s in subs if s["customer"] == q["customer"]]
    if q.get("price"):
        subs = [s for s in subs if any(it["price"]["id"] == q["price"] for it in s["items"]["data"])]
    return _list(ctx, "subscription", subs, "/v1/subscriptions")


async def get_subscription(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["id"]
    s = ctx.store.subscriptions.get(sid)
    return (
        json_response(_render(ctx, s, _expand_param(_query(ctx))), media_type="application/json")
        if s
        else _missing("subscription", sid)
    )


UPDATABLE = {
    "cancel_at_period_end",
    "metadata",
    "description",
    "cancellation_details",
    "expand",
    "proration_behavior",
    "cancel_at",
}


async def update_subscription(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["id"]
    sub = ctx.store.subscriptions.get(sid)
    if sub is None:
        return _missing("subscription", sid)
    form = await read_form(ctx.request)
    for name in form:
        if name not in UPDATABLE:
            return _error(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)
    ended = sub["status"] in ("canceled", "incomplete_expired")
    if ended and set(form) - {"metadata", "cancellation_details", "expand"}:
        return _error(400, "A canceled subscription can only update its cancellation_details and metadata.")
    if "cancel_at_period_end" in form:
        if _bool(form["cancel_at_period_end"], "cancel_at_period_end"):
            end = sub["items"]["data"][0]["current_period_end"]
            sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=int(ctx.now))
            sub["cancellation_details"] = {**sub["cancellation_details"], "reason": "cancellation_requested"}
        else:
            sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
            sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}
    if isinstance(form.get("cancellation_details"), dict):
        details = form["cancellation_details"]
        sub["cancellation_details"] = {
            **sub["cancellation_details"],
            **{k: details[k] or None for k in ("comment", "feedback") if k in details},
        }
    if isinstance(form.get("metadata"), dict):
        meta = dict(sub["metadata"])
        for k, v in form["metadata"].items():
            if v == "":
                meta.pop(k, None)
            else:
                meta[k] = v
        sub["metadata"] = meta
    elif form.get("metadata") == "":
        sub["metadata"] = {}
    if "description" in form:
        sub["description"] = form["description"] or None
    return json_response(_render(ctx, sub, _expand_param(form)), media_type="application/json")


async def cancel_subscription(ctx: Ctx) -> Response:
    sid = ctx.request.path_params["id"]
    sub = ctx.store.subscriptions.get(sid)
    if sub is None:
        return _missing("subscription", sid)
    if sub["status"] == "canceled":
        return _error(
            400, f"No such subscription: '{sid}'; it has already been canceled.", code="resource_missing"
        )
    now = int(ctx.now)
    sub.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False, cancel_at=None)
    sub["cancellation_details"] = {**sub["cancellation_details"], "reason": "cancellation_requested"}
    return json_response(_render(ctx, sub), media_type="application/json")
