"""Calendly API v2 (docs/vendors.md §1): users, event types, available times, scheduled events,
invitees, cancellation, and the Scheduling API's `POST /invitees`.

Resources are addressed by full URIs, as in the real API; here the URIs point at the sandbox
(`{sandbox}/calendly/...`). Query params that take a URI (`user=`, `event_type=`) are matched on the
trailing id, so a URI built for another host still works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
    decode_cursor,
    dumps,
    encode_cursor,
    int_param,
    iso,
    json_response,
    parse_time,
    read_json,
    url_with,
)

from .base import Ctx, FaultReply, Vendor, email_eq

SLOT_MINUTES = 30
MAX_COUNT = 100
# docs/vendors.md §1.3/§10.4: the current reference allows ranges up to 31 days (an older guide said 7).
MAX_AVAILABILITY_DAYS = 31


@dataclass
class CalendlyStore:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitees: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: int = 1


def _event_type(uuid: str, name: str, slug: str, duration: int, ts: float) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "name": name,
        "active": True,
        "booking_method": "instant",
        "slug": slug,
        "duration": duration,
        "duration_options": None,
        "kind": "solo",
        "pooling_type": None,
        "type": "StandardEventType",
        "color": "#0069ff",
        "created_at": iso(ts, fraction=6),
        "updated_at": iso(ts, fraction=6),
        "internal_note": None,
        "description_plain": f"{name} with {seed.ACCOUNT_NAME}",
        "description_html": f"<p>{name} with {seed.ACCOUNT_NAME}</p>",
        "secret": False,
        "deleted_at": None,
        "admin_managed": False,
        "locale": "en",
        "position": 0,
        "custom_questions": [],
    }


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
SCOPES = (
    "users:read",
    "scheduled_events:read",
    "scheduled_events:write",
    "event_types:read",
    "availability:read",
    "organizations:read",
)
LIMITED_SCOPES = ("users:read", "scheduled_events:read")
PAT = "eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiSFMyNTYifQ.sandbox-calendly-pat-acme.c2FuZGJveA"
PAT_LIMITED = "eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiSFMyNTYifQ.sandbox-calendly-pat-readonly.c2FuZGJveA"

OAUTH = Profile(
    vendor="calendly",
    title="Calendly",
    authorize_path="/oauth/authorize",
    token_path="/oauth/token",
    revoke_path="/oauth/revoke",
    # "Web clients send client_id:client_secret as Basic auth; native clients send client_id in
    # the body"; revoke takes client_id/client_secret in the body.
    token_auth_methods=("client_secret_basic",),
    revocation_auth_methods=("client_secret_basic", "client_secret_post"),
    scopes=SCOPES,
    access_ttl=2 * 3600,
    refresh_ttl=None,  # "don't expire until they are used"
    confidential=ClientSpec(
        "sbx-calendly-web-6b1f2c9d4e7a",
        "sbx-calendly-secret-3f8e1d2c7b6a5940e1d2c3b4a5968778",
        "botctl (web)",
    ),
    public=ClientSpec("sbx-calendly-native-0d9c8b7a6f5e", None, "botctl (native)"),
    publishes_metadata=True,
)


class Calendly(Vendor):
    name = "calendly"

    oauth_profile = OAUTH

    def static_credentials(self) -> list[StaticCredential]:
        return [StaticCredential(PAT, SCOPES), StaticCredential(PAT_LIMITED, LIMITED_SCOPES)]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "personal_access_token",
            "access_token": PAT,
            "scopes": list(SCOPES),
            "limited": {"access_token": PAT_LIMITED, "scopes": list(LIMITED_SCOPES)},
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        owned = seed.owned(customer)
        return {
            "scheduled_events": [seed.calendly_event_uuid(customer, i) for i in owned],
            "invitees": [seed.calendly_invitee_uuid(customer, i) for i in owned],
        }

    def seed_account(self) -> dict[str, Any]:
        return {
            "user": seed.CALENDLY_USER,
            "organization": seed.CALENDLY_ORG,
            "event_types": list(seed.CALENDLY_EVENT_TYPES),
        }

    def oauth_token_extras(self, origin: str, now: float) -> dict[str, Any]:
        api = origin + self.prefix(seed.TENANT)
        return {
            "created_at": int(now),
            "owner": f"{api}/users/{seed.CALENDLY_USER}",
            "organization": f"{api}/organizations/{seed.CALENDLY_ORG}",
        }

    def new_store(self, state: SandboxState) -> CalendlyStore:
        store = CalendlyStore()
        t0 = state.anchor - 90 * DAY
        intro, support = seed.CALENDLY_EVENT_TYPES
        store.event_types[intro] = _event_type(intro, "Intro call", "intro-call", 30, t0)
        store.event_types[support] = _event_type(support, "Support session", "support-session", 60, t0)
        for n, (c, i) in enumerate(seed.sequence()):
            uuid = seed.calendly_event_uuid(c, i)
            # Ada: three upcoming active, one upcoming canceled, one past; Grace: two upcoming.
            if c is seed.ADA and i == 4:
                start = state.anchor - 3 * DAY + 10 * 3600
            else:
                start = state.anchor + (2 + n) * DAY + (9 + n % 4) * 3600
            et = store.event_types[intro if n % 2 == 0 else support]
            ev = _event(uuid, et, start, start - 7 * DAY)
            store.events[uuid] = ev
            inv_uuid = seed.calendly_invitee_uuid(c, i)
            store.invitees[inv_uuid] = _invitee(inv_uuid, uuid, c.email, c.name, start - 7 * DAY)
            if c is seed.ADA and i == 3:
                _cancel(store, ev, "Customer asked to cancel", "invitee", c.name, start - 2 * DAY)
        return store

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # https://developer.calendly.com/api-docs/overview/rate-limits
        return {
            "X-RateLimit-Limit": "500",
            "X-RateLimit-Remaining": str(max(0, 500 - used)),
            "X-RateLimit-Reset": str(reset_in),
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        bodies = {
            429: {
                "title": "Too Many Requests",
                "message": "You have exceeded the rate limit. Please try again later.",
            },
            500: {
                "title": "Internal Server Error",
                "message": "The server encountered an unexpected condition.",
            },
            502: {"title": "Bad Gateway", "message": "The server received an invalid response."},
            503: {"title": "Service Unavailable", "message": "The service is temporarily unavailable."},
        }
        return FaultReply(status, {"content-type": "application/json; charset=utf-8"}, dumps(bodies[status]))

    def not_found(self, request: Request) -> Response:
        return _not_found()

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        token = bearer_token(ctx.request)
        check = ctx.state.tokens.check(self.name, token)
        if check.ok and check.token is not None:
            return check.token
        message = {
            "expired": "The access token expired",
            "revoked": "The access token is revoked",
        }.get(check.status, "The access token is invalid")
        return json_response({"title": "Unauthenticated", "message": message}, 401)

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        # A :write scope implies the matching :read (developer.calendly.com/docs/authentication/scopes).
        options = {scope, scope.replace(":read", ":write")}
        if scope == "availability:read":
            options |= {"event_types:read"}  # docs/vendors.md §1.1: the catalog lists it under event_types
        if "*" in granted or options & granted:
            return None
        return json_response(
            {
                "title": "Permission Denied",
                "message": f"This request requires the {scope} scope, which the access token does not have.",
            },
            403,
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/users/me", get_me, ["GET"], scope="users:read"),
            self.route("/users/{uuid}", get_user, ["GET"], scope="users:read"),
            self.route("/event_types", list_event_types, ["GET"], scope="event_types:read"),
            self.route("/event_types/{uuid}", get_event_type, ["GET"], scope="event_types:read"),
            self.route("/event_type_available_times", available_times, ["GET"], scope="availability:read"),
            self.route("/scheduled_events", list_events, ["GET"], scope="scheduled_events:read"),
            self.route("/scheduled_events/{uuid}", get_event, ["GET"], scope="scheduled_events:read"),
            self.route(
                "/scheduled_events/{uuid}/invitees", list_invitees, ["GET"], scope="scheduled_events:read"
            ),
            self.route(
                "/scheduled_events/{uuid}/invitees/{invitee}",
                get_invitee,
                ["GET"],
                scope="scheduled_events:read",
            ),
            self.route(
                "/scheduled_events/{uuid}/cancellation",
                cancel_event,
                ["POST"],
                scope="scheduled_events:write",
            ),
            self.route("/invitees", create_invitee, ["POST"], scope="scheduled_events:write"),
        ]


VENDOR = Calendly()


def _event(uuid: str, et: dict[str, Any], start: float, created: float) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "name": et["name"],
        "meeting_notes_plain": None,
        "meeting_notes_html": None,
        "status": "active",
        "start_time": start,
        "end_time": start + et["duration"] * 60,
        "event_type": et["uuid"],
        "location": {
            "type": "google_conference",
            "status": "pushed",
            "join_url": f"https://meet.example/{uuid.lower()}",
        },
        "invitees_counter": {"total": 1, "active": 1, "limit": 1},
        "created_at": created,
        "updated_at": created,
        "event_guests": [],
        "cancellation": None,
    }


def _invitee(uuid: str, event_uuid: str, email: str, name: str, created: float) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    return {
        "uuid": uuid,
        "event": event_uuid,
        "email": email,
        "first_name": first or None,
        "last_name": last or None,
        "name": name,
        "status": "active",
        "questions_and_answers": [],
        "timezone": "Europe/London",
        "created_at": created,
        "updated_at": created,
        "tracking": {
            "utm_campaign": None,
            "utm_source": None,
            "utm_medium": None,
            "utm_content": None,
            "utm_term": None,
            "salesforce_uuid": None,
        },
        "text_reminder_number": None,
        "rescheduled": False,
        "old_invitee": None,
        "new_invitee": None,
        "routing_form_submission": None,
        "cancellation": None,
        "payment": None,
        "no_show": None,
        "reconfirmation": None,
        "scheduling_method": None,
        "invitee_scheduled_by": None,
    }


def _cancel(
    store: CalendlyStore, ev: dict[str, Any], reason: str, canceler_type: str, by: str, ts: float
) -> None:
    cancellation = {"canceled_by": by, "reason": reason, "canceler_type": canceler_type, "created_at": ts}
    ev["status"] = "canceled"
    ev["cancellation"] = cancellation
    ev["updated_at"] = ts
    ev["invitees_counter"]["active"] = 0
    for inv in store.invitees.values():
        if inv["event"] == ev["uuid"]:
            inv["status"] = "canceled"
            inv["cancellation"] = cancellation
            inv["updated_at"] = ts


def _api(ctx: Ctx) -> str:
    return str(ctx.request.base_url).rstrip("/") + "/calendly"


def _uri_id(value: str, kind: str) -> str | None:
    """The id in a Calendly resource URI (`.../users/ABC` -> `ABC`), or None when it isn't one."""
    marker = f"/{kind}/"
    if marker not in value:
        return None
    tail = value.rsplit(marker, 1)[1].strip("/")
    return tail or None


def _user_resource(ctx: Ctx) -> dict[str, Any]:
    api = _api(ctx)
    ts = iso(ctx.state.anchor - 120 * DAY, fraction=6)
    return {
        "uri": f"{api}/users/{seed.CALENDLY_USER}",
        "name": seed.ACCOUNT_NAME,
        "slug": "acme-support",
        "email": seed.ACCOUNT_EMAIL,
        "scheduling_url": "https://calendly.com/acme-support",
        "timezone": "Europe/London",
        "time_notation": "24h",
        "avatar_url": None,
        "created_at": ts,
        "updated_at": ts,
        "current_organization": f"{api}/organizations/{seed.CALENDLY_ORG}",
        "resource_type": "User",
        "locale": "en",
    }


def _render_event_type(ctx: Ctx, et: dict[str, Any]) -> dict[str, Any]:
    api = _api(ctx)
    out = {k: v for k, v in et.items() if k != "uuid"}
    return {
        "uri": f"{api}/event_types/{et['uuid']}",
        **out,
        "scheduling_url": f"https://calendly.com/acme-support/{et['slug']}",
        "profile": {"type": "User", "name": seed.ACCOUNT_NAME, "owner": f"{api}/users/{seed.CALENDLY_USER}"},
    }


def _render_event(ctx: Ctx, ev: dict[str, Any]) -> dict[str, Any]:
    api = _api(ctx)
    out: dict[str, Any] = {
        "uri": f"{api}/scheduled_events/{ev['uuid']}",
        "name": ev["name"],
        "meeting_notes_plain": ev["meeting_notes_plain"],
        "meeting_notes_html": ev["meeting_notes_html"],
        "status": ev["status"],
        "start_time": iso(ev["start_time"], fraction=6),
        "end_time": iso(ev["end_time"], fraction=6),
        "event_type": f"{api}/event_types/{ev['event_type']}",
        "location": ev["location"],
        "invitees_counter": dict(ev["invitees_counter"]),
        "created_at": iso(ev["created_at"], fraction=6),
        "updated_at": iso(ev["updated_at"], fraction=6),
        "event_memberships": [
            {
                "user": f"{api}/users/{seed.CALENDLY_USER}",
                "user_email": seed.ACCOUNT_EMAIL,
                "user_name": seed.ACCOUNT_NAME,
            }
        ],
        "event_guests": ev["event_guests"],
    }
    if ev["cancellation"]:
        out["cancellation"] = _render_cancellation(ev["cancellation"])
    return out


def _render_cancellation(c: dict[str, Any]) -> dict[str, Any]:
    return {**c, "created_at": iso(c["created_at"], fraction=6)}


def _render_invitee(ctx: Ctx, inv: dict[str, Any]) -> dict[str, Any]:
    api = _api(ctx)
    event_uri = f"{api}/scheduled_events/{inv['event']}"
    out = {k: v for k, v in inv.items() if k not in ("uuid", "event", "cancellation")}
    out.update(
        uri=f"{event_uri}/invitees/{inv['uuid']}",
        event=event_uri,
        created_at=iso(inv["created_at"], fraction=6),
        updated_at=iso(inv["updated_at"], fraction=6),
        cancel_url=f"https://calendly.com/cancellations/{inv['uuid']}",
        reschedule_url=f"https://calendly.com/reschedulings/{inv['uuid']}",
    )
    if inv["cancellation"]:
        out["cancellation"] = _render_cancellation(inv["cancellation"])
    return out


def _not_found() -> Response:
    return json_response(
        {"title": "Resource Not Found", "message": "The server could not find the requested resource."}, 404
    )


def _invalid(
    details: list[dict[str, str]], message: str = "The supplied parameters are invalid."
) -> Response:
    return json_response({"title": "Invalid Argument", "message": message, "details": details}, 400)


def _paginate(
    ctx: Ctx, items: list[dict[str, Any]]
) -> Response | tuple[list[dict[str, Any]], dict[str, Any]]:
    q = ctx.request.query_params
    try:
        count = int_param(q.get("count"))
    except ValueError:
        return _invalid([{"parameter": "count", "message": "must be an integer"}])
    if count is not None and not 1 <= count <= MAX_COUNT:
        return _invalid([{"parameter": "count", "message": f"must be between 1 and {MAX_COUNT}"}])
    size = ctx.state.page_size(count, 20, MAX_COUNT)
    start = 0
    if q.get("page_token"):
        data = decode_cursor(q["page_token"])
        if data is None or not isinstance(data.get("o"), int):
            return _invalid([{"parameter": "page_token", "message": "is invalid"}])
        start = data["o"]
    chunk = items[start : start + size]
    next_token = encode_cursor({"o": start + size}) if start + size < len(items) else None
    prev_token = encode_cursor({"o": max(0, start - size)}) if start > 0 else None
    pagination = {
        "count": len(chunk),
        "next_page": url_with(ctx.request, page_token=next_token, count=size) if next_token else None,
        "previous_page": url_with(ctx.request, page_token=prev_token, count=size) if prev_token else None,
        "next_page_token": next_token,
        "previous_page_token": prev_token,
    }
    return chunk, pagination


def _check_owner(ctx: Ctx) -> Response | None:
    """`user` or `organization` is required; another user's events need org-admin rights."""
    q = ctx.request.query_params
    user, org = q.get("user"), q.get("organization")
    if not user and not org:
        return _invalid(
            [{"parameter": "user", "message": "user or organization is required"}],
        )
    if user:
        uid = _uri_id(user, "users")
        if uid is None:
            return _invalid([{"parameter": "user", "message": "is not a valid URI"}])
        if uid != seed.CALENDLY_USER:
            return json_response(
                {
                    "title": "Permission Denied",
                    "message": "You do not have permission to access this resource.",
                },
                403,
            )
    if org:
        oid = _uri_id(org, "organizations")
        if oid is None:
            return _invalid([{"parameter": "organization", "message": "is not a valid URI"}])
        if oid != seed.CALENDLY_ORG:
            return json_response(
                {
                    "title": "Permission Denied",
                    "message": "You do not have permission to access this resource.",
                },
                403,
            )
    return None


# --- handlers ------------------------------------------------------------------------------------


async def get_me(ctx: Ctx) -> Response:
    return json_response({"resource": _user_resource(ctx)})


async def get_user(ctx: Ctx) -> Response:
    if ctx.request.path_params["uuid"] != seed.CALENDLY_USER:
        return _not_found()
    return json_response({"resource": _user_resource(ctx)})


async def list_event_types(ctx: Ctx) -> Response:
    denied = _check_owner(ctx)
    if denied:
        return denied
    items = [_render_event_type(ctx, et) for et in ctx.store.event_types.values()]
    page = _paginate(ctx, items)
    if isinstance(page, Response):
        return page
    return json_response({"collection": page[0], "pagination": page[1]})


async def get_event_type(ctx: Ctx) -> Response:
    et = ctx.store.event_types.get(ctx.request.path_params["uuid"])
    return json_response({"resource": _render_event_type(ctx, et)}) if et else _not_found()


def _free_slots(store: CalendlyStore, et: dict[str, Any], start: float, end: float) -> list[float]:
    """Weekdays 09:00-17:00 UTC on the half hour, minus active events of the same host."""
    busy = [(e["start_time"], e["end_time"]) for e in store.events.values() if e["status"] == "active"]
    step = SLOT_MINUTES * 60
    t = math.ceil(start / step) * step
    slots = []
    while t + et["duration"] * 60 <= end and len(slots) < 2000:
        day_seconds = t % DAY
        weekday = int(t // DAY + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
        fits = 9 * 3600 <= day_seconds and day_seconds + et["duration"] * 60 <= 17 * 3600
        if weekday < 5 and fits and not any(s < t + et["duration"] * 60 and t < e for s, e in busy):
            slots.append(float(t))
        t += step
    return slots


async def available_times(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    details = []
    for p in ("event_type", "start_time", "end_time"):
        if not q.get(p):
            details.append({"parameter": p, "message": "is required"})
    if details:
        return _invalid(details)
    et_id = _uri_id(q["event_type"], "event_types")
    et = ctx.store.event_types.get(et_id or "")
    if et is None:
        return _invalid([{"parameter": "event_type", "message": "is invalid"}])
    start, end = parse_time(q["start_time"]), parse_time(q["end_time"])
    if start is None or end is None:
        return _invalid([{"parameter": "start_time", "message": "must be a valid ISO 8601 time"}])
    if start < ctx.now:
        return _invalid([{"parameter": "start_time", "message": "must be in the future"}])
    if end <= start:
        return _invalid([{"parameter": "end_time", "message": "must be after start_time"}])
    if end - start > MAX_AVAILABILITY_DAYS * DAY:
        return _invalid(
            [
                {
                    "parameter": "end_time",
                    "message": f"date range can be no greater than {MAX_AVAILABILITY_DAYS} days",
                }
            ]
        )
    collection = [
        {
            "status": "available",
            "invitees_remaining": 1,
            "start_time": iso(t),
            "scheduling_url": f"https://calendly.com/acme-support/{et['slug']}/"
            f"{quote(iso(t))}?month={iso(t)[:7]}&date={iso(t)[:10]}",
        }
        for t in _free_slots(ctx.store, et, start, end)
    ]
    return json_response({"collection": collection})


async def list_events(ctx: Ctx) -> Response:
    denied = _check_owner(ctx)
    if denied:
        return denied
    q = ctx.request.query_params
    status = q.get("status")
    if status and status not in ("active", "canceled"):
        return _invalid([{"parameter": "status", "message": "must be one of active, canceled"}])
    events = list(ctx.store.events.values())
    if status:
        events = [e for e in events if e["status"] == status]
    if q.get("invitee_email") and "calendly.invitee_email" not in ctx.state.config.ignored_filters:
        owners = {i["event"] for i in ctx.store.invitees.values() if email_eq(i["email"], q["invitee_email"])}
        events = [e for e in events if e["uuid"] in owners]
    for name, cmp in (("min_start_time", lambda a, b: a >= b), ("max_start_time", lambda a, b: a < b)):
        if q.get(name):
            bound = parse_time(q[name])
            if bound is None:
                return _invalid([{"parameter": name, "message": "must be a valid ISO 8601 time"}])
            events = [e for e in events if cmp(e["start_time"], bound)]
    sort = q.get("sort", "start_time:asc")
    if sort not in ("start_time:asc", "start_time:desc"):
        return _invalid([{"parameter": "sort", "message": "must be start_time:asc or start_time:desc"}])
    events.sort(key=lambda e: (e["start_time"], e["uuid"]), reverse=sort.endswith("desc"))
    page = _paginate(ctx, [_render_event(ctx, e) for e in events])
    if isinstance(page, Response):
        return page
    return json_response({"collection": page[0], "pagination": page[1]})


async def get_event(ctx: Ctx) -> Response:
    ev = ctx.store.events.get(ctx.request.path_params["uuid"])
    return json_response({"resource": _render_event(ctx, ev)}) if ev else _not_found()


async def list_invitees(ctx: Ctx) -> Response:
    uuid = ctx.request.path_params["uuid"]
    if uuid not in ctx.store.events:
        return _not_found()
    q = ctx.request.query_params
    invitees = [i for i in ctx.store.invitees.values() if i["event"] == uuid]
    if q.get("email"):
        invitees = [i for i in invitees if email_eq(i["email"], q["email"])]
    if q.get("status"):
        invitees = [i for i in invitees if i["status"] == q["status"]]
    invitees.sort(key=lambda i: i["created_at"], reverse=q.get("sort") == "created_at:desc")
    page = _paginate(ctx, [_render_invitee(ctx, i) for i in invitees])
    if isinstance(page, Response):
        return page
    return json_response({"collection": page[0], "pagination": page[1]})


async def get_invitee(ctx: Ctx) -> Response:
    inv = ctx.store.invitees.get(ctx.request.path_params["invitee"])
    if inv is None or inv["event"] != ctx.request.path_params["uuid"]:
        return _not_found()
    return json_response({"resource": _render_invitee(ctx, inv)})


async def cancel_event(ctx: Ctx) -> Response:
    ev = ctx.store.events.get(ctx.request.path_params["uuid"])
    if ev is None:
        return _not_found()
    body, ok = await read_json(ctx.request)
    if not ok or (body is not None and not isinstance(body, dict)):
        return _invalid([{"message": "The request body is not valid JSON."}])
    reason = (body or {}).get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 10000):
        return _invalid([{"parameter": "reason", "message": "must be a string of at most 10000 characters"}])
    if ev["status"] == "canceled":
        return json_response({"title": "Permission Denied", "message": "Event is already canceled"}, 403)
    if ev["end_time"] <= ctx.now:
        return json_response(
            {"title": "Permission Denied", "message": "Event in the past cannot be canceled"}, 403
        )
    _cancel(ctx.store, ev, reason or "", "host", seed.ACCOUNT_NAME, ctx.now)
    return json_response({"resource": _render_cancellation(ev["cancellation"])}, 201)


async def create_invitee(ctx: Ctx) -> Response:
    body, ok = await read_json(ctx.request)
    if not ok or not isinstance(body, dict):
        return _invalid([{"message": "The request body is not valid JSON."}])
    details = []
    et = ctx.store.event_types.get(_uri_id(str(body.get("event_type", "")), "event_types") or "")
    if et is None:
        details.append({"parameter": "event_type", "message": "is invalid"})
    start = parse_time(str(body.get("start_time", "")))
    if start is None:
        details.append({"parameter": "start_time", "message": "must be a valid ISO 8601 time"})
    invitee = body.get("invitee") if isinstance(body.get("invitee"), dict) else None
    if invitee is None or not invitee.get("email") or "@" not in str(invitee.get("email")):
        details.append({"parameter": "invitee.email", "message": "is required"})
    elif not (invitee.get("name") or invitee.get("first_name")):
        details.append({"parameter": "invitee.name", "message": "name or first_name is required"})
    if details:
        return _invalid(details)
    assert et is not None and start is not None and invitee is not None
    if start not in _free_slots(ctx.store, et, start, start + et["duration"] * 60):
        return _invalid(
            [
                {
                    "parameter": "start_time",
                    "message": "The selected time is no longer available.",
                    "code": "already_filled",
                }
            ]
        )
    n = ctx.store.counter
    ctx.store.counter += 1
    uuid = f"NEWEVENT{n:08d}"
    ev = _event(uuid, et, start, ctx.now)
    ctx.store.events[uuid] = ev
    name = invitee.get("name") or " ".join(
        p for p in (invitee.get("first_name"), invitee.get("last_name")) if p
    )
    inv = _invitee(f"NEWINVITEE{n:06d}", uuid, str(invitee["email"]), name, ctx.now)
    inv["timezone"] = invitee.get("timezone") or inv["timezone"]
    ctx.store.invitees[inv["uuid"]] = inv
    return json_response({"resource": _render_invitee(ctx, inv)}, 201)
