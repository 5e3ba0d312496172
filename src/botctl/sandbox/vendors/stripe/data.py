"""Stripe's seeded data: customers, invoices, subscriptions, charges, refunds and the store that holds
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botctl.sandbox import seed
from botctl.sandbox.state import DAY

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


def customer_record(c: seed.Customer, created: float) -> dict[str, Any]:
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


def subscription_record(
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


def invoice_record(
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
