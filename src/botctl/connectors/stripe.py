"""Stripe (https://api.stripe.com): a restricted key (`rk_live_…`) as a bearer token.

The visitor's customers are those whose email equals the token's email (there may be several);
an invoice or subscription is the visitor's when its `customer` is one of them. Lists page with
`limit` + `starting_after` while `has_more`. Every write carries an `Idempotency-Key`, made once
per action attempt so the transport's retries replay the same request. `Stripe-Version` is pinned
so response shapes do not change with the account's default version.
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
from botctl.connectors.base import Action, ActionContext, ActionError, Connector
from botctl.connectors.scopes import write_implies_read

if TYPE_CHECKING:
    import httpx

VENDOR = "Stripe"
API_VERSION = "2025-03-31.basil"
MAX_CUSTOMERS = 10


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    # A restricted key may not read the account; then prove the key with a call it must be allowed.
    try:
        acct = body(await client.get("/v1/account"), VENDOR)
    except ActionError as e:
        if e.code != "missing_scope":
            raise
        body(await client.get("/v1/customers", params={"limit": 1}), VENDOR)
        return "Stripe account (restricted key)"
    name = ((acct.get("settings") or {}).get("dashboard") or {}).get("display_name") or (
        acct.get("business_profile") or {}
    ).get("name")
    return f"{name or 'Stripe account'} ({acct.get('id')})"


async def _list(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    items: list[dict[str, Any]] = []
    q = {**params, "limit": 100}
    for _ in range(MAX_PAGES):
        data = body(await client.get(path, params=q), VENDOR)
        page = [o for o in data.get("data") or [] if isinstance(o, dict)]
        items.extend(page)
        if not data.get("has_more") or not page:
            return items, False
        q = {**q, "starting_after": page[-1]["id"]}
    return items, True


async def _my_customer_ids(ctx: ActionContext) -> list[str]:
    email = visitor_email(ctx)
    ids: list[str] = []
    # Stripe's email filter is case-sensitive; the token's spelling first, then the lower-case one.
    for variant in dict.fromkeys([email, email.lower()]):
        customers, _ = await _list(ctx.client, "/v1/customers", {"email": variant})
        for c in customers:
            if same_email(c.get("email"), email) and c.get("id") not in ids and not c.get("deleted"):
                ids.append(c["id"])
    return ids[:MAX_CUSTOMERS]


def _customer_of(obj: dict[str, Any]) -> str | None:
    c = obj.get("customer")
    return c.get("id") if isinstance(c, dict) else c


def _invoice(i: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": i.get("id"),
        "number": i.get("number"),
        "status": i.get("status"),
        "amount_due": i.get("amount_due"),
        "amount_paid": i.get("amount_paid"),
        "currency": i.get("currency"),
        "created": i.get("created"),
        "due_date": i.get("due_date"),
        "hosted_invoice_url": i.get("hosted_invoice_url"),
    }


def _subscription(s: dict[str, Any]) -> dict[str, Any]:
    items = ((s.get("items") or {}).get("data")) or []
    # Since API version 2025-03-31 the billing period lives on the items, not the subscription.
    period_end = s.get("current_period_end") or next(
        (it.get("current_period_end") for it in items if it.get("current_period_end")), None
    )
    return {
        "id": s.get("id"),
        "status": s.get("status"),
        "cancel_at_period_end": s.get("cancel_at_period_end"),
        "current_period_end": period_end,
        "canceled_at": s.get("canceled_at"),
        "items": [
            {
                "product": (it.get("price") or {}).get("product"),
                "nickname": (it.get("price") or {}).get("nickname"),
                "amount": (it.get("price") or {}).get("unit_amount"),
                "currency": (it.get("price") or {}).get("currency"),
                "interval": ((it.get("price") or {}).get("recurring") or {}).get("interval"),
                "quantity": it.get("quantity"),
            }
            for it in items
        ],
    }


async def list_my_invoices(ctx: ActionContext) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    truncated = False
    for cid in await _my_customer_ids(ctx):
        invoices, more = await _list(ctx.client, "/v1/invoices", {"customer": cid})
        truncated |= more
        # Drafts are not final yet: the customer has not been billed.
        out.extend(_invoice(i) for i in invoices if _customer_of(i) == cid and i.get("status") != "draft")
    touched(ctx, (i["id"] for i in out))
    return {"invoices": out, "truncated": truncated}


async def list_my_subscriptions(ctx: ActionContext) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    truncated = False
    for cid in await _my_customer_ids(ctx):
        subs, more = await _list(ctx.client, "/v1/subscriptions", {"customer": cid, "status": "all"})
        truncated |= more
        out.extend(_subscription(s) for s in subs if _customer_of(s) == cid)
    touched(ctx, (s["id"] for s in out))
    return {"subscriptions": out, "truncated": truncated}


async def cancel_my_subscription(ctx: ActionContext) -> dict[str, Any]:
    customer_ids = await _my_customer_ids(ctx)
    sub_id = ctx.params["subscription_id"]
    try:
        sub = body(await ctx.client.get(f"/v1/subscriptions/{sub_id}"), VENDOR)
    except ActionError as e:
        if e.code == "not_found":
            raise ActionError("not_found", "No such subscription.", upstream_status=404) from None
        raise
    if _customer_of(sub) not in customer_ids:
        raise forbidden("subscription")
    touched(ctx, [sub_id])
    if sub.get("status") in ("canceled", "incomplete_expired") or sub.get("cancel_at_period_end"):
        return _lean_cancel(sub)
    import uuid

    updated = body(
        await ctx.client.post(
            f"/v1/subscriptions/{sub_id}",
            data={"cancel_at_period_end": "true"},
            headers={"Idempotency-Key": f"botctl-{uuid.uuid4()}"},
        ),
        VENDOR,
    )
    return _lean_cancel(updated)


def _lean_cancel(sub: dict[str, Any]) -> dict[str, Any]:
    s = _subscription(sub)
    return {k: s[k] for k in ("id", "status", "cancel_at_period_end", "current_period_end", "canceled_at")}


CONNECTOR = Connector(
    name="stripe",
    vendor=VENDOR,
    category="payments",
    auth="api_key",
    auth_style="bearer",
    # Restricted-key permissions, named as Stripe's 403 messages name them ("Having the
    # 'rak_invoice_read' permission would allow this request to continue."). Write implies read.
    scopes=("rak_customer_read", "rak_invoice_read", "rak_subscription_read", "rak_subscription_write"),
    base_url="https://api.stripe.com",
    config=(),
    sandbox_path="/stripe",
    default_headers={"Stripe-Version": API_VERSION},
    validate=validate,
    actions=(
        Action(
            name="list_my_invoices",
            description="The visitor's invoices (number, status, amounts, link to pay or download).",
            params=object_schema(),
            customer_specific=True,
            scopes=("rak_customer_read", "rak_invoice_read"),
            idempotent=True,
            handler=list_my_invoices,
        ),
        Action(
            name="list_my_subscriptions",
            description="The visitor's subscriptions and their renewal dates.",
            params=object_schema(),
            customer_specific=True,
            scopes=("rak_customer_read", "rak_subscription_read"),
            idempotent=True,
            handler=list_my_subscriptions,
        ),
        Action(
            name="cancel_my_subscription",
            description="Cancel one of the visitor's subscriptions at the end of the current period.",
            params=object_schema(
                {"subscription_id": {"type": "string", "pattern": "^sub_[A-Za-z0-9]{1,250}$"}},
                required=["subscription_id"],
            ),
            customer_specific=True,
            scopes=("rak_customer_read", "rak_subscription_write"),
            idempotent=True,
            writes=True,
            handler=cancel_my_subscription,
        ),
    ),
    docs_url="https://docs.stripe.com/api",
    broader_scopes=write_implies_read("_read", "_write"),
)
