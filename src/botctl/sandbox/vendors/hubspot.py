"""HubSpot (docs/vendors.md §5): account info, token introspection, and CRM v3 objects (contacts,
notes, tickets) with search, associations and cursor paging (`after` -> `paging.next.after`).

Object ids are strings on the wire. Error bodies follow HS-SPEC `components.schemas.Error`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.wire import (
    bearer_token,
    dumps,
    empty_response,
    int_param,
    iso,
    json_response,
    new_uuid,
    parse_time,
    read_json,
)

from .base import Ctx, FaultReply, Vendor, email_eq

if TYPE_CHECKING:
    from botctl.sandbox.oauth.routes import OAuthRoutes

TYPE_ALIASES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "notes": "notes",
    "note": "notes",
    "0-46": "notes",
    "tickets": "tickets",
    "ticket": "tickets",
    "0-5": "tickets",
}
SINGULAR = {"contacts": "contact", "notes": "note", "tickets": "ticket"}
READ_SCOPE = {
    "contacts": "crm.objects.contacts.read",
    "notes": "crm.objects.contacts.read",
    "tickets": "tickets",
}
WRITE_SCOPE = {
    "contacts": "crm.objects.contacts.write",
    "notes": "crm.objects.contacts.write",
    "tickets": "tickets",
}
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "tickets": (
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
        "content",
    ),
}
WRITABLE = {
    "contacts": {
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "company",
        "website",
        "jobtitle",
        "lifecyclestage",
        "hs_lead_status",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "hubspot_owner_id",
        "hs_language",
        "message",
        "date_of_birth",
    },
    "notes": {"hs_note_body", "hs_timestamp", "hubspot_owner_id", "hs_attachment_ids"},
    "tickets": {
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "hs_ticket_category",
        "hubspot_owner_id",
        "source_type",
    },
}
# HUBSPOT_DEFINED association type ids (developers.hubspot.com associations v4 reference).
ASSOCIATION_TYPES = {
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("tickets", "contacts"): 16,
    ("contacts", "tickets"): 15,
    ("notes", "tickets"): 228,
    ("tickets", "notes"): 227,
}
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
MAX_SEARCH_LIMIT = 200
MAX_LIST_LIMIT = 100


@dataclass
class HubspotStore:
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {t: {} for t in SINGULAR})
    # (from_type, from_id, to_type, to_id, type_id)
    associations: set[tuple[str, str, str, str, int]] = field(default_factory=set)
    next_id: int = 1001

    def associate(self, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        self.associations.add((a_type, a_id, b_type, b_id, ASSOCIATION_TYPES[(a_type, b_type)]))
        self.associations.add((b_type, b_id, a_type, a_id, ASSOCIATION_TYPES[(b_type, a_type)]))

    def associated(self, a_type: str, a_id: str, b_type: str) -> list[tuple[str, int]]:
        found = sorted((x[3], x[4]) for x in self.associations if x[:3] == (a_type, a_id, b_type))
        return sorted(found, key=lambda p: int(p[0]) if p[0].isdigit() else 0)


def _obj(oid: str, props: dict[str, Any], ts: float) -> dict[str, Any]:
    stamp = iso(ts, fraction=3)
    return {
        "id": oid,
        "properties": {**props, "hs_object_id": oid},
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def _stamp_props(otype: str, obj: dict[str, Any], ts: float, *, created: bool) -> None:
    stamp = iso(ts, fraction=3)
    props = obj["properties"]
    if otype == "notes":
        if created:
            props["hs_createdate"] = stamp
        props["hs_lastmodifieddate"] = stamp
    elif otype == "contacts":
        if created:
            props["createdate"] = stamp
        props["lastmodifieddate"] = stamp
    else:
        if created:
            props["createdate"] = stamp
        props["hs_lastmodifieddate"] = stamp
    obj["updatedAt"] = stamp


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
TOKEN_SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "tickets")
TOKEN_LIMITED_SCOPES = ("oauth", "crm.objects.contacts.read")
TOKEN = "pat-na1-5d3c1e2f-0a4b-4c6d-8e9f-0123456789ab"
TOKEN_LIMITED = "pat-na1-0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"

OAUTH = Profile(
    vendor="hubspot",
    title="HubSpot",
    authorize_path="/oauth/authorize",
    token_path="/oauth/v3/token",
    token_aliases=("/oauth/v1/token",),
    revoke_path="/oauth/v3/token/revoke",
    token_auth_methods=("client_secret_post",),
    revocation_auth_methods=("client_secret_post",),
    scopes=(
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "tickets",
    ),
    access_ttl=30 * 60,
    refresh_ttl=None,
    confidential=ClientSpec(
        "5f0c7e2a-3b1d-4c8e-9a6f-0d2b4e6a8c1f", "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "botctl"
    ),
    token_type="bearer",
    access_token_prefix="COx",
    extra_paths={"refresh_tokens_v1": "/oauth/v1/refresh-tokens"},
    device_flow_default=True,
)
# HubSpot's token errors carry `status` / `message` / `correlationId` (the RFC 6749 fields are kept).
_OAUTH_STATUS = {
    ("invalid_grant", "authorization_code"): ("BAD_AUTH_CODE", "missing or unknown auth code"),
    ("invalid_grant", "refresh_token"): ("BAD_REFRESH_TOKEN", "missing or unknown refresh token"),
    ("invalid_client", None): ("BAD_CLIENT_ID", "missing or unknown client id"),
}


class Hubspot(Vendor):
    name = "hubspot"
    request_id_header = "X-HubSpot-Correlation-Id"

    oauth_profile = OAUTH

    def static_credentials(self) -> list[StaticCredential]:
        return [StaticCredential(TOKEN, TOKEN_SCOPES), StaticCredential(TOKEN_LIMITED, TOKEN_LIMITED_SCOPES)]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "private_app_token",
            "access_token": TOKEN,
            "scopes": list(TOKEN_SCOPES),
            "hub_id": seed.HUBSPOT_PORTAL_ID,
            "limited": {"access_token": TOKEN_LIMITED, "scopes": list(TOKEN_LIMITED_SCOPES)},
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        return {
            "contact_id": seed.hubspot_contact_id(customer),
            "notes": seed.hubspot_note_ids(customer),
            "tickets": seed.hubspot_ticket_ids(customer),
        }

    def seed_account(self) -> dict[str, Any]:
        return {"portal_id": seed.HUBSPOT_PORTAL_ID}

    # -- OAuth: the v1 endpoints, HubSpot's error bodies ------------------------------------------------

    def oauth_describe(self, root: str) -> dict[str, Any]:
        return {
            "token_url_v1": root + "/oauth/v1/token",
            "refresh_token_url_v1": root + OAUTH.extra_paths["refresh_tokens_v1"] + "/{refresh_token}",
            "introspect_url": root + "/oauth/v3/token/introspect",
        }

    def oauth_error(self, body: dict[str, Any], grant_type: str | None) -> dict[str, Any]:
        key = (body["error"], grant_type if body["error"] == "invalid_grant" else None)
        status, message = _OAUTH_STATUS.get(
            key, (body["error"].upper(), body.get("error_description") or body["error"])
        )
        return {**body, "status": status, "message": message, "correlationId": new_uuid()}

    def oauth_routes(self, routes: OAuthRoutes) -> list[Route]:
        async def refresh_token(ctx: Ctx) -> Response:
            """v1 `GET|DELETE /oauth/v1/refresh-tokens/{token}`. DELETE removes only the refresh token:
            access tokens live until expiry and the app stays installed."""
            store = ctx.state.oauth.stores[self.name]
            record = store.refresh_tokens.get(ctx.request.path_params["token"])
            family = store.families.get(record.family_id) if record else None
            if record is None or family is None or record.status != "active" or family.revoked:
                return json_response(
                    {
                        "status": "error",
                        "message": "refresh token not found",
                        "correlationId": new_uuid(),
                        "category": "OBJECT_NOT_FOUND",
                    },
                    404,
                )
            if ctx.request.method == "DELETE":
                record.status = "revoked"
                ctx.state.stats.record_oauth_event(self.name, "revocation")
                return empty_response(204)
            return json_response(
                {
                    "token": record.token,
                    "user": seed.ACCOUNT_EMAIL,
                    "hub_domain": "acme.example",
                    "scopes": record.scope.split(),
                    "hub_id": seed.HUBSPOT_PORTAL_ID,
                    "client_id": record.client_id,
                    "user_id": 9001,
                    "token_type": "refresh",
                }
            )

        path = OAUTH.extra_paths["refresh_tokens_v1"] + "/{token}"
        return [Route(path, self.endpoint(refresh_token, auth=False), methods=["GET", "DELETE"])]

    def new_store(self, state: SandboxState) -> HubspotStore:
        store = HubspotStore()
        t0 = state.anchor - 100 * DAY
        for c in seed.CUSTOMERS:
            cid = seed.hubspot_contact_id(c)
            if cid is None:
                continue
            contact = _obj(
                cid,
                {
                    "email": c.email,
                    "firstname": c.first_name,
                    "lastname": c.last_name,
                    "lifecyclestage": "customer",
                    "phone": None,
                    "company": None,
                },
                t0,
            )
            _stamp_props("contacts", contact, t0, created=True)
            store.objects["contacts"][cid] = contact
            for n, nid in enumerate(seed.hubspot_note_ids(c)):
                ts = t0 + (n + 1) * 5 * DAY
                note = _obj(
                    nid,
                    {
                        "hs_note_body": f"<p>Call with {c.first_name}: follow-up #{n + 1}</p>",
                        "hs_timestamp": iso(ts, fraction=3),
                    },
                    ts,
                )
                _stamp_props("notes", note, ts, created=True)
                store.objects["notes"][nid] = note
                store.associate("notes", nid, "contacts", cid)
            for n, tid in enumerate(seed.hubspot_ticket_ids(c)):
                ts = t0 + (n + 2) * 7 * DAY
                ticket = _obj(
                    tid,
                    {
                        "subject": f"{c.first_name}'s request #{n + 1}",
                        "content": "Customer asked about their order.",
                        "hs_pipeline": "0",
                        "hs_pipeline_stage": "1" if n % 2 == 0 else "4",
                        "hs_ticket_priority": "MEDIUM",
                        "hs_ticket_category": None,
                    },
                    ts,
                )
                _stamp_props("tickets", ticket, ts, created=True)
                store.objects["tickets"][tid] = ticket
                store.associate("tickets", tid, "contacts", cid)
        return store

    def new_request_id(self) -> str:
        return new_uuid()

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # docs/vendors.md §5.4 (usage-details doc): per-10-second burst plus daily.
        return {
            "X-HubSpot-RateLimit-Daily": "500000",
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, 500000 - used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": str(max(0, 190 - used % 190)),
            "X-HubSpot-RateLimit-Secondly": "19",
            "X-HubSpot-RateLimit-Secondly-Remaining": "18",
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        if status == 429:
            body: dict[str, Any] = {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": new_uuid(),
                "policyName": "SECONDLY",
            }
        else:
            body = {
                "status": "error",
                "message": "internal error",
                "correlationId": new_uuid(),
                "category": "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE",
            }
        return FaultReply(status, {"content-type": "application/json;charset=utf-8"}, dumps(body))

    def not_found(self, request: Request) -> Response:
        return _error(404, "Unable to route request: no route found for path", "OBJECT_NOT_FOUND")

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        token = bearer_token(ctx.request)
        if token is None:
            return _error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        check = ctx.state.tokens.check(self.name, token)
        if check.ok and check.token is not None:
            return check.token
        if check.status == "expired" and check.token and check.token.expires_at is not None:
            ago = max(1, int((ctx.now - check.token.expires_at) // 60))
            return _error(
                401,
                f"The OAuth token used to make this call expired {ago} minute(s) ago.",
                "EXPIRED_AUTHENTICATION",
            )
        return _error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
            "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        )

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        options = {scope}
        if scope.endswith(".read"):
            options.add(scope[: -len(".read")] + ".write")
        if "*" in granted or options & granted:
            return None
        return json_response(
            {
                "status": "error",
                "message": "This app hasn't been granted all required scopes to make this call. Read more about "
                "required scopes here: https://developers.hubspot.com/scopes.",
                "correlationId": new_uuid(),
                "errors": [
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
                "category": "MISSING_SCOPES",
            },
            403,
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/account-info/v3/details", account_details, ["GET"]),
            Route("/oauth/v3/token/introspect", self.endpoint(introspect, auth=False), methods=["POST"]),
            Route(
                "/oauth/v1/access-tokens/{token}",
                self.endpoint(access_token_info, auth=False),
                methods=["GET"],
            ),
            self.route("/crm/v3/objects/{object_type}", list_objects, ["GET"]),
            self.route("/crm/v3/objects/{object_type}", create_object, ["POST"]),
            self.route("/crm/v3/objects/{object_type}/search", search_objects, ["POST"]),
            self.route("/crm/v3/objects/{object_type}/{object_id}", get_object, ["GET"]),
            self.route("/crm/v3/objects/{object_type}/{object_id}", update_object, ["PATCH"]),
            self.route(
                "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}", list_associations, ["GET"]
            ),
        ]


VENDOR = Hubspot()


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    return json_response(
        {"status": "error", "message": message, "correlationId": new_uuid(), "category": category, **extra},
        status,
        media_type="application/json;charset=utf-8",
    )


def _validation(message: str, **extra: Any) -> Response:
    return _error(400, message, "VALIDATION_ERROR", **extra)


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
        return raw, _error(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
    scope = (WRITE_SCOPE if write else READ_SCOPE)[otype]
    return otype, VENDOR.require(ctx, scope)


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
                return _error(409, f"Contact already exists. Existing ID: {other['id']}", "CONFLICT")
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
        return _error(400, "client_id and client_secret are required", "VALIDATION_ERROR")
    check = ctx.state.tokens.check(VENDOR.name, form["token"])
    # Introspection knows OAuth tokens only; a private-app/static token reads as inactive.
    if not check.ok or check.token is None or check.token.kind == "static":
        return json_response({"active": False})
    return json_response(_token_info(ctx, check.token))


async def access_token_info(ctx: Ctx) -> Response:
    check = ctx.state.tokens.check(VENDOR.name, ctx.request.path_params["token"])
    if not check.ok or check.token is None or check.token.kind == "static":
        return _error(404, "access token not found", "OBJECT_NOT_FOUND")
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
        return _error(404, "resource not found", "OBJECT_NOT_FOUND")
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
    obj = _obj(oid, props, ctx.now)
    _stamp_props(otype, obj, ctx.now, created=True)
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
        return _error(404, "resource not found", "OBJECT_NOT_FOUND")
    body = await _json_object(ctx)
    if isinstance(body, Response):
        return body
    props = body.get("properties", {})
    bad = _check_properties(otype, props, ctx.store, exclude_id=obj["id"])
    if bad:
        return bad
    for k, v in props.items():
        obj["properties"][k] = None if v in (None, "") else str(v)
    _stamp_props(otype, obj, ctx.now, created=False)
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
        return _error(
            400, f"Unable to infer object type from: {ctx.request.path_params['to_type']}", "VALIDATION_ERROR"
        )
    oid = ctx.request.path_params["object_id"]
    if _find(ctx.store, otype, oid, None) is None:
        return _error(404, "resource not found", "OBJECT_NOT_FOUND")
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
