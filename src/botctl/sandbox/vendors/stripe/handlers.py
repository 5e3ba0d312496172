"""Stripe's endpoints: balance, account, customers (list and search), invoices, subscriptions, refunds."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import Ctx, Handler
from botctl.sandbox.wire import (
    decode_brackets,
    decode_cursor,
    dumps,
    encode_cursor,
    json_response,
    read_form,
)

from .data import (
    BASIL,
    DEFAULT_VERSION,
    IDEMPOTENCY_TTL,
    INVOICE_STATUSES,
    MAX_LIMIT,
    SUBSCRIPTION_STATUSES,
    SavedResponse,
    StripeStore,
)


class StripeError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = error_response(status, message, **extra)


def mask(key: str, keep: int) -> str:
    prefix = key[:8] if key[:3] in ("sk_", "rk_", "pk_") else ""
    rest = key[len(prefix) :]
    if len(rest) <= keep:
        return prefix + rest
    return prefix + "*" * (len(rest) - keep) + rest[-keep:]


def error_response(
    status: int, message: str, *, type_: str = "invalid_request_error", **extra: Any
) -> Response:
    err = {k: v for k, v in extra.items() if v is not None}
    err.update(message=message, type=type_)
    if "code" in err and "doc_url" not in err:
        err["doc_url"] = f"https://stripe.com/docs/error-codes/{str(err['code']).replace('_', '-')}"
    retry = "true" if status == 409 or status >= 500 else "false"
    return json_response(
        {"error": err}, status, {"Stripe-Should-Retry": retry}, media_type="application/json"
    )


def _missing(kind: str, oid: str, param: str = "id") -> Response:
    return error_response(404, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


def _version(ctx: Ctx) -> str:
    return ctx.request.scope.get("stripe.version", DEFAULT_VERSION)


def versioned(handler: Handler) -> Handler:
    async def run(ctx: Ctx) -> Response:
        raw = ctx.request.headers.get("stripe-version")
        if raw is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", raw.strip()):
            return error_response(400, f"Invalid Stripe API version: {raw}", param="stripe_version")
        ctx.request.scope["stripe.version"] = raw.strip() if raw else DEFAULT_VERSION
        try:
            response = await handler(ctx)
        except StripeError as exc:
            response = exc.response
        response.headers["Stripe-Version"] = _version(ctx)
        return response

    run.__name__ = handler.__name__
    return run


def with_idempotency(handler: Handler) -> Handler:
    """Idempotency-Key: replay the saved response for the same key and parameters; a different
    request under the same key is an idempotency_error (docs.stripe.com/api/idempotent_requests).
    Responses to requests rejected before execution (4xx) are not saved, like Stripe's."""

    async def run(ctx: Ctx) -> Response:
        key = ctx.request.headers.get("idempotency-key")
        if not key:
            return await handler(ctx)
        if len(key) > 255:
            return error_response(
                400, "Idempotency-Key must be at most 255 characters", type_="idempotency_error"
            )
        store: StripeStore = ctx.store
        for k in [k for k, v in store.idempotency.items() if ctx.now - v.created > IDEMPOTENCY_TTL]:
            del store.idempotency[k]
        raw = await ctx.request.body()
        canonical = sorted(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        fingerprint = (
            ctx.request.method,
            ctx.vendor.vendor_path(ctx.request),
            hashlib.sha256(dumps(canonical)).hexdigest(),
        )
        saved = store.idempotency.get(key)
        if saved is not None:
            if saved.fingerprint[:2] != fingerprint[:2]:
                return error_response(
                    400,
                    f"Keys for idempotent requests can only be used for the same endpoint they were "
                    f"first used for ('{saved.fingerprint[0]} {saved.fingerprint[1]}' vs "
                    f"'{fingerprint[0]} {fingerprint[1]}'). Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
            if saved.fingerprint != fingerprint:
                return error_response(
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
            return error_response(
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
            return error_response(400, f"Invalid integer: {limit_raw}", param="limit")
        limit = int(limit_raw)
        if not 1 <= limit <= MAX_LIMIT:
            return error_response(
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
        return error_response(400, "Missing required param: query.", code="parameter_missing", param="query")
    try:
        groups = _search_filter(str(query))
    except ValueError as exc:
        return error_response(
            400,
            f"Invalid query: {exc}. See https://stripe.com/docs/search#search-query-language.",
            param="query",
        )
    allowed = {"email", "name", "phone", "created"}
    for group in groups:
        for _, name, _, _ in group:
            if not name.startswith("metadata.") and name not in allowed:
                return error_response(
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
        return error_response(400, f"Invalid limit: {limit_raw}", param="limit")
    size = ctx.state.page_size(int(limit_raw) if limit_raw else None, 10, MAX_LIMIT)
    start = 0
    if q.get("page"):
        data = decode_cursor(str(q["page"]))
        if not data or not isinstance(data.get("o"), int):
            return error_response(400, "Invalid page token", param="page")
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
            return error_response(
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
        return error_response(
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
            return error_response(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )
    ended = sub["status"] in ("canceled", "incomplete_expired")
    if ended and set(form) - {"metadata", "cancellation_details", "expand"}:
        return error_response(
            400, "A canceled subscription can only update its cancellation_details and metadata."
        )
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
        return error_response(
            400, f"No such subscription: '{sid}'; it has already been canceled.", code="resource_missing"
        )
    now = int(ctx.now)
    sub.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False, cancel_at=None)
    sub["cancellation_details"] = {**sub["cancellation_details"], "reason": "cancellation_requested"}
    return json_response(_render(ctx, sub), media_type="application/json")
