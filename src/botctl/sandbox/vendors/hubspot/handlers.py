"""HubSpot's endpoints: account info, token introspection, CRM v3 objects, search and associations."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, email_eq
from botctl.sandbox.wire import (
    int_param,
    iso,
    json_response,
    new_uuid,
    parse_time,
    read_json,
)

from .data import (
    ASSOCIATION_TYPES,
    DEFAULT_PROPERTIES,
    MAX_LIST_LIMIT,
    MAX_SEARCH_LIMIT,
    OPERATORS,
    READ_SCOPE,
    SINGULAR,
    TYPE_ALIASES,
    WRITABLE,
    WRITE_SCOPE,
    HubspotStore,
    object_record,
    stamp_props,
)

if TYPE_CHECKING:
    pass


def error_response(status: int, message: str, category: str, **extra: Any) -> Response:
    return json_response(
        {"status": "error", "message": message, "correlationId": new_uuid(), "category": category, **extra},
        status,
        media_type="application/json;charset=utf-8",
    )


def _validation(message: str, **extra: Any) -> Response:
    return error_response(400, message, "VALIDATION_ERROR", **extra)


def _property_errors(errors: list[dict[str, Any]]) -> Response:
    payload = [
        {"isValid": False, **e, "localizedErrorMessage": e["message"], "portalId": seed.HUBSPOT_PORTAL_ID}
        for e in errors
    ]
    return _validation("Property values were not valid: " + json.dumps(payload, separators=(",", ":")))


def _object_type(ctx: Ctx, *, write: bool) -> tuple[str, Response | None]:
    raw = ctx.request.path_params["object_type"]
    otype = TYPE_ALIASES.get(raw)
    if otype is None:
        return raw, error_response(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
    scope = (WRITE_SCOPE if write else READ_SCOPE)[otype]
    return otype, ctx.vendor.require(ctx, scope)


def _requested_properties(ctx: Ctx) -> list[str]:
    out: list[str] = []
    for value in ctx.request.query_params.getlist("properties"):
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


def _render(
    store: HubspotStore,
    otype: str,
    obj: dict[str, Any],
    props: list[str] | None,
    associations: list[str] | None = None,
) -> dict[str, Any]:
    names = list(props) if props else list(DEFAULT_PROPERTIES[otype])
    for must in (
        "hs_object_id",
        "createdate" if otype != "notes" else "hs_createdate",
        "lastmodifieddate" if otype == "contacts" else "hs_lastmodifieddate",
    ):
        if must not in names:
            names.append(must)
    out = {
        "id": obj["id"],
        "properties": {n: obj["properties"].get(n) for n in names},
        "createdAt": obj["createdAt"],
        "updatedAt": obj["updatedAt"],
        "archived": obj["archived"],
    }
    if associations:
        assoc: dict[str, Any] = {}
        for name in associations:
            to_type = TYPE_ALIASES.get(name)
            if to_type is None or to_type == otype:
                continue
            found = store.associated(otype, obj["id"], to_type)
            if found:
                label = f"{SINGULAR[otype]}_to_{SINGULAR[to_type]}"
                assoc[to_type] = {"results": [{"id": i, "type": label} for i, _ in found]}
        if assoc:
            out["associations"] = assoc
    return out


def _find(store: HubspotStore, otype: str, object_id: str, id_property: str | None) -> dict[str, Any] | None:
    objects = store.objects[otype]
    if id_property and id_property != "hs_object_id":
        return next(
            (o for o in objects.values() if _prop_eq(o["properties"].get(id_property), object_id)), None
        )
    obj = objects.get(object_id)
    return obj if obj and not obj["archived"] else None


def _prop_eq(value: Any, wanted: str) -> bool:
    return value is not None and str(value).strip().lower() == str(wanted).strip().lower()


def _check_properties(
    otype: str, props: Any, store: HubspotStore, *, exclude_id: str | None = None
) -> Response | None:
    if not isinstance(props, dict):
        return _validation("Invalid input JSON: properties must be an object")
    unknown = [k for k in props if k not in WRITABLE[otype]]
    if unknown:
        return _property_errors(
            [
                {"message": f'Property "{k}" does not exist', "error": "PROPERTY_DOESNT_EXIST", "name": k}
                for k in unknown
            ]
        )
    if otype == "contacts" and props.get("email") is not None:
        email = str(props["email"]).strip()
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            return _property_errors(
                [{"message": f"Email address {email} is invalid", "error": "INVALID_EMAIL", "name": "email"}]
            )
        for other in store.objects["contacts"].values():
            if (
                other["id"] != exclude_id
                and not other["archived"]
                and email_eq(other["properties"].get("email"), email)
            ):
                return error_response(409, f"Contact already exists. Existing ID: {other['id']}", "CONFLICT")
    return None


def _normalize_timestamp(value: Any) -> str | None:
    text = str(value).strip()
    if text.isdigit():
        return iso(int(text) / 1000, fraction=3)
    ts = parse_time(text)
    return None if ts is None else iso(ts, fraction=3)


# --- handlers ------------------------------------------------------------------------------------


async def account_details(ctx: Ctx) -> Response:
    return json_response(
        {
            "portalId": seed.HUBSPOT_PORTAL_ID,
            "accountType": "STANDARD",
            "timeZone": "Europe/London",
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
    )


def _token_info(ctx: Ctx, record: AccessToken) -> dict[str, Any]:
    return {
        "active": True,
        "token_type": "access_token",
        "client_id": record.subject.get("client_id", "sandbox-client"),
        "scope": " ".join(sorted(record.scopes)),
        "scopes": sorted(record.scopes),
        "hub_id": seed.HUBSPOT_PORTAL_ID,
        "hub_domain": "acme.example",
        "user_id": 9001,
        "user": seed.ACCOUNT_EMAIL,
        "app_id": record.subject.get("app_id", 3001),
        "exp": int(record.expires_at) if record.expires_at else None,
        "iat": int(record.issued_at),
        "expires_in": record.expires_in(ctx.now),
    }


async def introspect(ctx: Ctx) -> Response:
    form = dict(parse_qsl((await ctx.request.body()).decode("utf-8", "replace")))
    if not form.get("token"):
        return _validation("token is required")
    if not form.get("client_id") or not form.get("client_secret"):
        return error_response(400, "client_id and client_secret are required", "VALIDATION_ERROR")
    check = ctx.state.tokens.check(ctx.vendor.name, form["token"])
    # Introspection knows OAuth tokens only; a private-app/static token reads as inactive.
    if not check.ok or check.token is None or check.token.kind == "static":
        return json_response({"active": False})
    return json_response(_token_info(ctx, check.token))


async def access_token_info(ctx: Ctx) -> Response:
    check = ctx.state.tokens.check(ctx.vendor.name, ctx.request.path_params["token"])
    if not check.ok or check.token is None or check.token.kind == "static":
        return error_response(404, "access token not found", "OBJECT_NOT_FOUND")
    info = _token_info(ctx, check.token)
    return json_response(
        {
            "token": check.token.token,
            "user": info["user"],
            "hub_domain": info["hub_domain"],
            "scopes": info["scopes"],
            "hub_id": info["hub_id"],
            "app_id": info["app_id"],
            "expires_in": info["expires_in"],
            "user_id": info["user_id"],
            "token_type": "access",
        }
    )


def _paged(
    ctx: Ctx, items: list[Any], limit: int | None, after: str | None, maximum: int, default: int
) -> tuple[list[Any], dict[str, Any] | None] | Response:
    if limit is not None and not 1 <= limit <= maximum:
        return _validation(f"limit must be between 1 and {maximum}")
    size = ctx.state.page_size(limit, default, maximum)
    try:
        start = int(after) if after else 0
    except ValueError:
        return _validation(f"Invalid after value: {after}")
    chunk = items[start : start + size]
    paging = None
    if start + size < len(items):
        nxt = str(start + size)
        paging = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return chunk, paging


async def list_objects(ctx: Ctx) -> Response:
    otype, denied = _object_type(ctx, write=False)
    if denied:
        return denied
    q = ctx.request.query_params
    try:
        limit = int_param(q.get("limit"))
    except ValueError:
        return _validation("limit must be an integer")
    archived = q.get("archived") == "true"
    objs = sorted(
        (o for o in ctx.store.objects[otype].values() if o["archived"] == archived),
        key=lambda o: int(o["id"]),
    )
    page = _paged(ctx, objs, limit, q.get("after"), MAX_LIST_LIMIT, 10)
    if isinstance(page, Response):
        return page
    assoc = [a.strip() for v in q.getlist("associations") for a in v.split(",") if a.strip()]
    body: dict[str, Any] = {
        "results": [_render(ctx.store, otype, o, _requested_properties(ctx), assoc) for o in page[0]]
    }
    if page[1]:
        body["paging"] = page[1]
    return json_response(body)


async def get_object(ctx: Ctx) -> Response:
    otype, denied = _object_type(ctx, write=False)
    if denied:
        return denied
    q = ctx.request.query_params
    obj = _find(ctx.store, otype, ctx.request.path_params["object_id"], q.get("idProperty"))
    if obj is None:
        return error_response(404, "resource not found", "OBJECT_NOT_FOUND")
    assoc = [a.strip() for v in q.getlist("associations") for a in v.split(",") if a.strip()]
    return json_response(_render(ctx.store, otype, obj, _requested_properties(ctx), assoc))


async def _json_object(ctx: Ctx) -> dict[str, Any] | Response:
    body, ok = await read_json(ctx.request)
    if not ok:
        return _validation("Invalid input JSON on line 1, column 1: Cannot parse request body")
    if not isinstance(body, dict):
        return _validation("Invalid input JSON: expected an object")
    return body


async def create_object(ctx: Ctx) -> Response:
    otype, denied = _object_type(ctx, write=True)
    if denied:
        return denied
    body = await _json_object(ctx)
    if isinstance(body, Response):
        return body
    props = body.get("properties", {})
    bad = _check_properties(otype, props, ctx.store)
    if bad:
        return bad
    props = {k: (None if v is None else str(v)) for k, v in props.items()}
    if otype == "notes":
        if not props.get("hs_timestamp"):
            return _property_errors(
                [
                    {
                        "message": "hs_timestamp is required",
                        "error": "REQUIRED_PROPERTY",
                        "name": "hs_timestamp",
                    }
                ]
            )
        normalized = _normalize_timestamp(props["hs_timestamp"])
        if normalized is None:
            return _property_errors(
                [
                    {
                        "message": f"{props['hs_timestamp']} is not a valid datetime",
                        "error": "INVALID_DATETIME",
                        "name": "hs_timestamp",
                    }
                ]
            )
        props["hs_timestamp"] = normalized
    if otype == "tickets":
        missing = [p for p in ("subject", "hs_pipeline_stage") if not props.get(p)]
        if missing:
            return _property_errors(
                [{"message": f"{p} is required", "error": "REQUIRED_PROPERTY", "name": p} for p in missing]
            )
        props.setdefault("hs_pipeline", "0")
    links = body.get("associations") or []
    pending: list[tuple[str, str]] = []
    if not isinstance(links, list):
        return _validation("Invalid input JSON: associations must be a list")
    for link in links:
        to_id = str(((link or {}).get("to") or {}).get("id", ""))
        types = (link or {}).get("types") or []
        type_ids = {t.get("associationTypeId") for t in types if isinstance(t, dict)}
        target = next(
            (tt for (ft, tt), tid in ASSOCIATION_TYPES.items() if ft == otype and tid in type_ids), None
        )
        if target is None:
            return _validation(
                "One or more association types are invalid for this object type",
                context={"associationTypeIds": [str(t) for t in type_ids]},
            )
        if to_id not in ctx.store.objects[target] or ctx.store.objects[target][to_id]["archived"]:
            return _validation(
                f"Associations to {SINGULAR[target]} {to_id} are invalid: the object does not exist",
                context={"invalidIds": [to_id]},
            )
        pending.append((target, to_id))
    oid = str(ctx.store.next_id)
    ctx.store.next_id += 1
    obj = object_record(oid, props, ctx.now)
    stamp_props(otype, obj, ctx.now, created=True)
    ctx.store.objects[otype][oid] = obj
    for target, to_id in pending:
        ctx.store.associate(otype, oid, target, to_id)
    return json_response(_render(ctx.store, otype, obj, list(props)), 201)


async def update_object(ctx: Ctx) -> Response:
    otype, denied = _object_type(ctx, write=True)
    if denied:
        return denied
    obj = _find(
        ctx.store, otype, ctx.request.path_params["object_id"], ctx.request.query_params.get("idProperty")
    )
    if obj is None:
        return error_response(404, "resource not found", "OBJECT_NOT_FOUND")
    body = await _json_object(ctx)
    if isinstance(body, Response):
        return body
    props = body.get("properties", {})
    bad = _check_properties(otype, props, ctx.store, exclude_id=obj["id"])
    if bad:
        return bad
    for k, v in props.items():
        obj["properties"][k] = None if v in (None, "") else str(v)
    stamp_props(otype, obj, ctx.now, created=False)
    return json_response(_render(ctx.store, otype, obj, list(props)))


def _match(store: HubspotStore, otype: str, obj: dict[str, Any], flt: dict[str, Any]) -> bool:
    name, op = str(flt.get("propertyName", "")), str(flt.get("operator", "EQ"))
    if name.startswith("associations."):
        target = TYPE_ALIASES.get(name.split(".", 1)[1])
        ids = {i for i, _ in store.associated(otype, obj["id"], target)} if target else set()
        values = {str(v) for v in flt.get("values") or []} | (
            {str(flt["value"])} if "value" in flt else set()
        )
        return bool(ids & values) if op in ("EQ", "IN") else not (ids & values)
    raw = obj["properties"].get(name)
    if name == "hs_object_id":
        raw = obj["id"]
    if op == "HAS_PROPERTY":
        return raw not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return raw in (None, "")
    value = flt.get("value")
    if op == "EQ":
        return _prop_eq(raw, value)
    if op == "NEQ":
        return not _prop_eq(raw, value)
    if op in ("IN", "NOT_IN"):
        hit = any(_prop_eq(raw, v) for v in flt.get("values") or [])
        return hit if op == "IN" else not hit
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = re.escape(str(value or "").lower()).replace(r"\*", ".*")
        hit = raw is not None and any(
            re.fullmatch(pattern, tok) for tok in re.split(r"[\s@.]+", str(raw).lower()) + [str(raw).lower()]
        )
        return hit if op == "CONTAINS_TOKEN" else not hit
    if raw is None:
        return False
    a, b = _comparable(raw), _comparable(value)
    hi = _comparable(flt.get("highValue"))
    try:
        return {
            "LT": lambda: a < b,
            "LTE": lambda: a <= b,
            "GT": lambda: a > b,
            "GTE": lambda: a >= b,
            "BETWEEN": lambda: b <= a <= hi,
        }[op]()
    except TypeError:
        return False


def _comparable(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    try:
        return float(text)
    except ValueError:
        ts = parse_time(text)
        return ts * 1000 if ts is not None else text.lower()


async def search_objects(ctx: Ctx) -> Response:
    otype, denied = _object_type(ctx, write=False)
    if denied:
        return denied
    body = await _json_object(ctx)
    if isinstance(body, Response):
        return body
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > 5:
        return _validation(
            "There was a problem with the request: filterGroups must be a list of at most 5 groups"
        )
    total_filters = 0
    for g in groups:
        filters = (g or {}).get("filters") or []
        total_filters += len(filters)
        if len(filters) > 6 or any(str((f or {}).get("operator", "EQ")) not in OPERATORS for f in filters):
            return _validation(
                "There was a problem with the request: each group takes at most 6 filters with a "
                "valid operator"
            )
    if total_filters > 18:
        return _validation("There was a problem with the request: at most 18 filters in total")
    objs = [o for o in ctx.store.objects[otype].values() if not o["archived"]]
    if groups:
        objs = [
            o
            for o in objs
            if any(
                all(_match(ctx.store, otype, o, f) for f in (g or {}).get("filters") or []) for g in groups
            )
        ]
    query = str(body.get("query") or "").strip().lower()
    if query:
        objs = [
            o
            for o in objs
            if any(query in str(o["properties"].get(p) or "").lower() for p in DEFAULT_PROPERTIES[otype])
        ]
    objs.sort(key=lambda o: int(o["id"]))
    for sort in reversed(body.get("sorts") or []):
        if isinstance(sort, str):
            name, desc = sort.lstrip("-"), sort.startswith("-")
        else:
            name, desc = (
                str(sort.get("propertyName")),
                str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING",
            )
        objs.sort(
            key=lambda o, n=name: (
                _comparable(o["properties"].get(n)) is None,
                str(_comparable(o["properties"].get(n))),
            ),
            reverse=desc,
        )
    limit = body.get("limit")
    if limit is not None and not isinstance(limit, int):
        return _validation("limit must be an integer")
    page = _paged(
        ctx, objs, limit, str(body["after"]) if body.get("after") is not None else None, MAX_SEARCH_LIMIT, 10
    )
    if isinstance(page, Response):
        return page
    props = body.get("properties") if isinstance(body.get("properties"), list) else None
    out: dict[str, Any] = {
        "total": len(objs),
        "results": [_render(ctx.store, otype, o, props) for o in page[0]],
    }
    if page[1]:
        out["paging"] = {"next": {"after": page[1]["next"]["after"]}}
    return json_response(out)


async def list_associations(ctx: Ctx) -> Response:
    otype, denied = _object_type(ctx, write=False)
    if denied:
        return denied
    to_type = TYPE_ALIASES.get(ctx.request.path_params["to_type"])
    if to_type is None:
        return error_response(
            400, f"Unable to infer object type from: {ctx.request.path_params['to_type']}", "VALIDATION_ERROR"
        )
    oid = ctx.request.path_params["object_id"]
    if _find(ctx.store, otype, oid, None) is None:
        return error_response(404, "resource not found", "OBJECT_NOT_FOUND")
    q = ctx.request.query_params
    try:
        limit = int_param(q.get("limit"))
    except ValueError:
        return _validation("limit must be an integer")
    found = ctx.store.associated(otype, oid, to_type)
    page = _paged(ctx, found, limit, q.get("after"), 500, 500)
    if isinstance(page, Response):
        return page
    out: dict[str, Any] = {
        "results": [
            {
                "toObjectId": int(i),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": None}],
            }
            for i, t in page[0]
        ]
    }
    if page[1]:
        out["paging"] = page[1]
    return json_response(out)
