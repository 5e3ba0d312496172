"""Shopify's endpoints: the REST ones (access scopes, shop) and the GraphQL endpoint with its cost-based
throttling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import graphql as gql
from botctl.sandbox import seed
from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import Ctx
from botctl.sandbox.wire import iso, json_response, read_json

from .data import VERSION_RE
from .resolvers import QueryCtx
from .schema import SCHEMA

if TYPE_CHECKING:
    pass


def address_record(first: str, last: str, n: int) -> dict[str, Any]:
    return {
        "first_name": first,
        "last_name": last,
        "address1": f"{10 + n} Analytical Row",
        "address2": None,
        "city": "London",
        "province": None,
        "province_code": None,
        "zip": f"N{n + 1} 1AA",
        "country": "United Kingdom",
        "country_code": "GB",
        "phone": None,
        "company": None,
    }


def _version_ok(ctx: Ctx) -> Response | None:
    if not VERSION_RE.match(ctx.request.path_params["version"]):
        return json_response({"errors": "Not Found"}, 404)
    return None


def _version_header(ctx: Ctx, response: Response) -> Response:
    response.headers["X-Shopify-API-Version"] = ctx.request.path_params["version"]
    return response


# --- REST ----------------------------------------------------------------------------------------


async def access_scopes(ctx: Ctx) -> Response:
    assert ctx.principal is not None
    scopes = sorted(ctx.principal.scopes - {"*"})
    return json_response(
        {"access_scopes": [{"handle": s} for s in scopes]}, headers={"X-Shopify-Shop-Api-Call-Limit": "1/40"}
    )


def _shop_rest(ctx: Ctx) -> dict[str, Any]:
    return {
        "id": 60000000001,
        "name": "Acme",
        "email": seed.ACCOUNT_EMAIL,
        "domain": "shop.acme.example",
        "myshopify_domain": f"{ctx.tenant}.myshopify.com",
        "plan_name": "basic",
        "plan_display_name": "Basic",
        "currency": "USD",
        "iana_timezone": "Europe/London",
        "customer_email": seed.ACCOUNT_EMAIL,
        "created_at": iso(ctx.state.anchor - 900 * DAY),
        "country_code": "GB",
    }


async def rest_shop(ctx: Ctx) -> Response:
    bad = _version_ok(ctx)
    if bad:
        return bad
    response = json_response({"shop": _shop_rest(ctx)}, headers={"X-Shopify-Shop-Api-Call-Limit": "1/40"})
    return _version_header(ctx, response)


# --- cost ----------------------------------------------------------------------------------------


def _requested_cost(req: gql.Request, type_name: str, selections: list[Any] | None) -> int:
    total = 0
    fields = SCHEMA.fields_of(type_name) or {}
    for f in gql.selection_fields(req, selections):
        fd = fields.get(f.name) or _any_field(f.name)
        if fd is None:
            continue
        target = gql.named_type(fd.type)
        if target.endswith("Connection"):
            args = {k: gql.resolve_value(v, req.variables) for k, v in f.args.items()}
            n = args.get("first") or args.get("last") or 0
            total += 2 + int(n) * (1 + _node_cost(req, target[: -len("Connection")], f.selections))
        elif SCHEMA.is_composite(target) and target not in (
            "MoneyBag",
            "MoneyV2",
            "PageInfo",
            "MailingAddress",
        ):
            total += 1 + _requested_cost(req, target, f.selections)
    return total


def _node_cost(req: gql.Request, node_type: str, selections: list[Any] | None) -> int:
    total = 0
    for f in gql.selection_fields(req, selections):
        if f.name == "edges":
            for g in gql.selection_fields(req, f.selections):
                if g.name == "node":
                    total = max(total, _requested_cost(req, node_type, g.selections))
        elif f.name == "nodes":
            total = max(total, _requested_cost(req, node_type, f.selections))
    return total


def _any_field(name: str) -> gql.FieldDef | None:
    for t in SCHEMA.types.values():
        if name in t.fields:
            return t.fields[name]
    return None


def _actual_cost(data: Any) -> int:
    """Objects returned (connections 2 + their nodes), read off the response data."""
    if isinstance(data, list):
        return sum(_actual_cost(d) for d in data)
    if not isinstance(data, dict):
        return 0
    total = 0
    for value in data.values():
        if isinstance(value, dict):
            if "edges" in value or "nodes" in value:
                items = value.get("nodes") or [
                    e.get("node") for e in value.get("edges") or [] if isinstance(e, dict)
                ]
                total += 2 + sum(1 + _actual_cost(n) for n in items if n)
            elif "amount" not in value and "hasNextPage" not in value and "shopMoney" not in value:
                total += 1 + _actual_cost(value)
        elif isinstance(value, list):
            total += sum(1 + _actual_cost(v) for v in value if isinstance(v, dict))
    return total


def _bucket(ctx: Ctx, token: str, spend: float = 0.0) -> float:
    cfg = ctx.state.config
    available, last = ctx.store.buckets.get(token, (cfg.shopify_max_available, ctx.now))
    available = min(cfg.shopify_max_available, available + (ctx.now - last) * cfg.shopify_restore_rate)
    available -= spend
    ctx.store.buckets[token] = (available, ctx.now)
    return available


def _cost_ext(ctx: Ctx, requested: int, actual: int | None, available: float) -> dict[str, Any]:
    cfg = ctx.state.config
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": float(cfg.shopify_max_available),
                "currentlyAvailable": round(max(0.0, available), 1),
                "restoreRate": float(cfg.shopify_restore_rate),
            },
        }
    }


async def graphql_endpoint(ctx: Ctx) -> Response:
    bad = _version_ok(ctx)
    if bad:
        return bad
    content_type = ctx.request.headers.get("content-type", "")
    variables: Any = None
    operation_name = None
    if content_type.startswith("application/graphql"):
        source = (await ctx.request.body()).decode("utf-8", "replace")
    else:
        body, ok = await read_json(ctx.request)
        if not ok:
            return _version_header(ctx, json_response({"errors": "Invalid JSON in request body"}, 400))
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return _version_header(
                ctx, json_response({"errors": {"query": "Required parameter missing or invalid"}}, 400)
            )
        source, variables, operation_name = body["query"], body.get("variables"), body.get("operationName")
    try:
        req = gql.prepare(SCHEMA, source, variables, operation_name)
    except gql.GraphQLError as exc:
        return _version_header(ctx, json_response({"errors": [exc.to_dict()]}))
    except gql.ValidationErrors as exc:
        return _version_header(ctx, json_response({"errors": [e.to_dict() for e in exc.errors]}))
    assert ctx.principal is not None
    token = ctx.principal.token
    requested = max(1, _requested_cost(req, "QueryRoot", req.operation.selections))
    available = _bucket(ctx, token)
    if requested > available:
        body = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": _cost_ext(ctx, requested, None, available),
        }
        return _version_header(ctx, json_response(body))
    data, errors = gql.execute(SCHEMA, req, None, QueryCtx(ctx, ctx.principal.scopes))
    actual = max(1, _actual_cost(data))
    available = _bucket(ctx, token, actual)
    out: dict[str, Any] = {}
    if errors:
        out["errors"] = [e.to_dict() for e in errors]
    out["data"] = data
    out["extensions"] = _cost_ext(ctx, requested, actual, available)
    if ctx.request.scope.get("shopify.search"):
        out["extensions"]["search"] = ctx.request.scope["shopify.search"]
    return _version_header(ctx, json_response(out))
