"""Calendly's endpoints: users, event types, available times, scheduled events, invitees, cancellations."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import Ctx, email_eq
from botctl.sandbox.wire import (
    decode_cursor,
    encode_cursor,
    int_param,
    iso,
    json_response,
    parse_time,
    read_json,
    url_with,
)

from .data import MAX_AVAILABILITY_DAYS, MAX_COUNT, SLOT_MINUTES, CalendlyStore


def event_record(uuid: str, et: dict[str, Any], start: float, created: float) -> dict[str, Any]:
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


def invitee_record(uuid: str, event_uuid: str, email: str, name: str, created: float) -> dict[str, Any]:
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


def cancellation_record(
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


def not_found_response() -> Response:
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
        return not_found_response()
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
    return json_response({"resource": _render_event_type(ctx, et)}) if et else not_found_response()


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
    return json_response({"resource": _render_event(ctx, ev)}) if ev else not_found_response()


async def list_invitees(ctx: Ctx) -> Response:
    uuid = ctx.request.path_params["uuid"]
    if uuid not in ctx.store.events:
        return not_found_response()
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
        return not_found_response()
    return json_response({"resource": _render_invitee(ctx, inv)})


async def cancel_event(ctx: Ctx) -> Response:
    ev = ctx.store.events.get(ctx.request.path_params["uuid"])
    if ev is None:
        return not_found_response()
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
    cancellation_record(ctx.store, ev, reason or "", "host", seed.ACCOUNT_NAME, ctx.now)
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
    ev = event_record(uuid, et, start, ctx.now)
    ctx.store.events[uuid] = ev
    name = invitee.get("name") or " ".join(
        p for p in (invitee.get("first_name"), invitee.get("last_name")) if p
    )
    inv = invitee_record(f"NEWINVITEE{n:06d}", uuid, str(invitee["email"]), name, ctx.now)
    inv["timezone"] = invitee.get("timezone") or inv["timezone"]
    ctx.store.invitees[inv["uuid"]] = inv
    return json_response({"resource": _render_invitee(ctx, inv)}, 201)
