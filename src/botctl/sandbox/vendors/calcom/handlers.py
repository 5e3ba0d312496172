"""Cal.com's endpoints: me, event types, slots, bookings (list, get, create, cancel), with its versions and
errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request  # noqa: TID253
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
)

from .data import (
    BOOKING_STATUSES,
    BOOKINGS_CURSOR_VERSION,
    BOOKINGS_VERSION,
    EVENT_TYPES_VERSION,
    MAX_TAKE,
    SLOTS_VERSION,
    CalcomStore,
    booking_record,
)


def error_body(path: str, code: str, message: str) -> dict[str, Any]:
    # CALCOM apps/api/v2/src/filters/http-exception.filter.ts
    return {
        "status": "error",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "path": path,
        "error": {"code": code, "message": message},
    }


def error_response(request: Request, status: int, code: str, message: str) -> Response:
    vendor = request.app.state.sandbox.vendors["calcom"]
    return json_response(error_body(vendor.vendor_path(request), code, message), status)


def _bad(ctx: Ctx, message: str) -> Response:
    return error_response(ctx.request, 400, "BadRequestException", message)


def _version(ctx: Ctx, minimum: str) -> str | Response:
    version = ctx.request.headers.get("cal-api-version", "").strip()
    if not version:
        return _bad(
            ctx,
            f"cal-api-version header is required by the botctl sandbox (use {minimum} or later); the real API "
            "falls back to an older endpoint version without it",
        )
    try:
        datetime.strptime(version, "%Y-%m-%d")
    except ValueError:
        return _bad(ctx, f"Invalid cal-api-version: {version}")
    if version < minimum:
        return _bad(
            ctx,
            f"cal-api-version {version} is not implemented by the botctl sandbox (use {minimum} or later)",
        )
    return version


def _ms(ts: float) -> str:
    return iso(ts, fraction=3)


def _render_booking(b: dict[str, Any]) -> dict[str, Any]:
    return {
        **b,
        "start": _ms(b["start"]),
        "end": _ms(b["end"]),
        "createdAt": _ms(b["createdAt"]),
        "updatedAt": _ms(b["updatedAt"]),
    }


def _ok(data: Any, status: int = 200, **extra: Any) -> Response:
    return json_response({"status": "success", "data": data, **extra}, status)


# --- handlers ------------------------------------------------------------------------------------


async def get_me(ctx: Ctx) -> Response:
    return _ok(
        {
            "id": seed.CALCOM_USER_ID,
            "username": "acme",
            "email": seed.ACCOUNT_EMAIL,
            "name": seed.ACCOUNT_NAME,
            "avatarUrl": None,
            "bio": None,
            "timeFormat": 24,
            "defaultScheduleId": 4001,
            "weekStart": "Monday",
            "timeZone": "Europe/London",
            "locale": "en",
            "organizationId": None,
            "organization": None,
        }
    )


async def list_event_types(ctx: Ctx) -> Response:
    version = _version(ctx, EVENT_TYPES_VERSION)
    if isinstance(version, Response):
        return version
    return _ok(list(ctx.store.event_types.values()))


async def get_event_type(ctx: Ctx) -> Response:
    version = _version(ctx, EVENT_TYPES_VERSION)
    if isinstance(version, Response):
        return version
    et = ctx.store.event_types.get(ctx.request.path_params["event_type_id"])
    if et is None:
        return error_response(ctx.request, 404, "NotFoundException", "Event type not found")
    return _ok(et)


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _day_bound(value: str, tz: ZoneInfo, *, end: bool) -> float | None:
    if len(value) == 10:
        try:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=tz)
        except ValueError:
            return None
        return (day + timedelta(days=1)).timestamp() if end else day.timestamp()
    return parse_time(value)


def _busy(store: CalcomStore) -> list[tuple[float, float]]:
    return [(b["start"], b["end"]) for b in store.bookings.values() if b["status"] in ("accepted", "pending")]


def _free_slots(store: CalcomStore, et: dict[str, Any], start: float, end: float, now: float) -> list[float]:
    """Weekdays 09:00-17:00 UTC every 30 minutes, from now + minimum notice, minus bookings."""
    step, length = 1800, et["lengthInMinutes"] * 60
    earliest = max(start, now + et["minimumBookingNotice"] * 60)
    t = -(-earliest // step) * step
    busy = _busy(store)
    out: list[float] = []
    while t + length <= end and len(out) < 2000:
        weekday = int(t // DAY + 3) % 7
        sec = t % DAY
        if weekday < 5 and 9 * 3600 <= sec and sec + length <= 17 * 3600:
            if not any(s < t + length and t < e for s, e in busy):
                out.append(float(t))
        t += step
    return out


async def get_slots(ctx: Ctx) -> Response:
    # Slots of a public event type need no credential; a credential, when sent, must be valid.
    if "authorization" in ctx.request.headers:
        result = ctx.vendor.authenticate(ctx)
        if isinstance(result, Response):
            return result
    version = _version(ctx, SLOTS_VERSION)
    if isinstance(version, Response):
        return version
    q = ctx.request.query_params
    try:
        et_id = int_param(q.get("eventTypeId"))
    except ValueError:
        return _bad(ctx, "eventTypeId must be an integer")
    et = None
    if et_id is not None:
        et = ctx.store.event_types.get(et_id)
    elif q.get("eventTypeSlug") and q.get("username") == "acme":
        et = next((e for e in ctx.store.event_types.values() if e["slug"] == q["eventTypeSlug"]), None)
    else:
        return _bad(ctx, "Either eventTypeId or eventTypeSlug + username must be provided")
    if et is None:
        return error_response(ctx.request, 404, "NotFoundException", "Event Type not found")
    if not q.get("start") or not q.get("end"):
        return _bad(ctx, "start and end are required")
    tz = _zone(q.get("timeZone"))
    if tz is None:
        return _bad(ctx, f"Invalid timeZone: {q.get('timeZone')}")
    start, end = _day_bound(q["start"], tz, end=False), _day_bound(q["end"], tz, end=True)
    if start is None or end is None or end <= start:
        return _bad(ctx, "start and end must be dates (YYYY-MM-DD) or ISO 8601 times, start before end")
    data: dict[str, list[dict[str, str]]] = {}
    for t in _free_slots(ctx.store, et, start, end, ctx.now):
        local = datetime.fromtimestamp(t, tz)
        stamp = local.isoformat(timespec="milliseconds")
        entry = {"start": stamp}
        if q.get("format") == "range":
            entry["end"] = datetime.fromtimestamp(t + et["lengthInMinutes"] * 60, tz).isoformat(
                timespec="milliseconds"
            )
        data.setdefault(local.strftime("%Y-%m-%d"), []).append(entry)
    return _ok(data)


def _status_match(b: dict[str, Any], status: str, now: float) -> bool:
    if status == "cancelled":
        return b["status"] in ("cancelled", "rejected")
    if b["status"] in ("cancelled", "rejected"):
        return False
    if status == "upcoming":
        return b["end"] >= now and b["status"] == "accepted"
    if status == "unconfirmed":
        return b["end"] >= now and b["status"] == "pending"
    if status == "past":
        return b["end"] < now
    return False  # "recurring": the sandbox seeds no recurring bookings


async def list_bookings(ctx: Ctx) -> Response:
    version = _version(ctx, BOOKINGS_VERSION)
    if isinstance(version, Response):
        return version
    cursor_mode = version >= BOOKINGS_CURSOR_VERSION
    q = ctx.request.query_params
    bookings = list(ctx.store.bookings.values())
    if q.get("status"):
        statuses = [s.strip() for s in q["status"].split(",") if s.strip()]
        if cursor_mode and len(statuses) > 1:
            return _bad(ctx, "status accepts a single value in this API version")
        bad = [s for s in statuses if s not in BOOKING_STATUSES]
        if bad:
            return _bad(ctx, f"status must be one of {', '.join(BOOKING_STATUSES)}")
        bookings = [b for b in bookings if any(_status_match(b, s, ctx.now) for s in statuses)]
    if q.get("attendeeEmail"):
        bookings = [
            b for b in bookings if any(email_eq(a["email"], q["attendeeEmail"]) for a in b["attendees"])
        ]
    if q.get("attendeeName"):
        bookings = [
            b for b in bookings if any(q["attendeeName"].lower() in a["name"].lower() for a in b["attendees"])
        ]
    try:
        et_id = int_param(q.get("eventTypeId"))
        take = int_param(q.get("take") or q.get("limit"))
        skip = int_param(q.get("skip")) or 0
    except ValueError:
        return _bad(ctx, "eventTypeId, take and skip must be integers")
    if et_id is not None:
        bookings = [b for b in bookings if b["eventTypeId"] == et_id]
    for name, cmp in (
        ("afterStart", lambda b, t: b["start"] >= t),
        ("beforeEnd", lambda b, t: b["end"] <= t),
    ):
        if q.get(name):
            bound = parse_time(q[name])
            if bound is None:
                return _bad(ctx, f"{name} must be an ISO 8601 date-time")
            bookings = [b for b in bookings if cmp(b, bound)]
    desc = q.get("sortStart") == "desc"
    bookings.sort(key=lambda b: (b["start"], b["id"]), reverse=desc)
    if take is not None and not 1 <= take <= MAX_TAKE:
        return _bad(ctx, f"take must not be greater than {MAX_TAKE}")
    size = ctx.state.page_size(take, 100, MAX_TAKE)
    if cursor_mode:
        start = 0
        if q.get("cursor"):
            data = decode_cursor(q["cursor"])
            if data is None or not isinstance(data.get("o"), int):
                return _bad(ctx, "Invalid cursor")
            start = data["o"]
        chunk = bookings[start : start + size]
        more = start + size < len(bookings)
        pagination = {"hasMore": more, "nextCursor": encode_cursor({"o": start + size}) if more else None}
        return _ok([_render_booking(b) for b in chunk], pagination=pagination)
    chunk = bookings[skip : skip + size]
    total = len(bookings)
    pages = -(-total // size) if total else 0
    pagination = {
        "totalItems": total,
        "remainingItems": max(0, total - skip - len(chunk)),
        "returnedItems": len(chunk),
        "itemsPerPage": size,
        "currentPage": skip // size + 1,
        "totalPages": pages,
        "hasNextPage": skip + size < total,
        "hasPreviousPage": skip > 0,
    }
    return _ok([_render_booking(b) for b in chunk], pagination=pagination)


async def get_booking(ctx: Ctx) -> Response:
    version = _version(ctx, BOOKINGS_VERSION)
    if isinstance(version, Response):
        return version
    uid = ctx.request.path_params["uid"]
    b = ctx.store.bookings.get(uid)
    if b is None:
        return error_response(
            ctx.request, 404, "NotFoundException", f"Booking with uid={uid} was not found in the database"
        )
    return _ok(_render_booking(b))


async def create_booking(ctx: Ctx) -> Response:
    version = _version(ctx, BOOKINGS_VERSION)
    if isinstance(version, Response):
        return version
    body, ok = await read_json(ctx.request)
    if not ok or not isinstance(body, dict):
        return _bad(ctx, "Request body must be a JSON object")
    problems = []
    et = None
    if isinstance(body.get("eventTypeId"), int):
        et = ctx.store.event_types.get(body["eventTypeId"])
    elif body.get("eventTypeSlug") and body.get("username") == "acme":
        et = next((e for e in ctx.store.event_types.values() if e["slug"] == body["eventTypeSlug"]), None)
    else:
        problems.append("eventTypeId must be an integer (or pass eventTypeSlug with username)")
    start = parse_time(str(body.get("start", ""))) if body.get("start") else None
    if start is None:
        problems.append("start must be a valid ISO 8601 date string")
    attendee = body.get("attendee") if isinstance(body.get("attendee"), dict) else None
    if attendee is None:
        problems.append("attendee should not be null or undefined")
    else:
        if not isinstance(attendee.get("name"), str) or not attendee["name"].strip():
            problems.append("attendee.name must be a string")
        if not isinstance(attendee.get("email"), str) or "@" not in attendee["email"]:
            problems.append("attendee.email must be an email")
        if not isinstance(attendee.get("timeZone"), str) or _zone(attendee["timeZone"]) is None:
            problems.append("attendee.timeZone must be a valid IANA time zone")
    if problems:
        return _bad(ctx, ", ".join(problems))
    if et is None:
        return error_response(ctx.request, 404, "NotFoundException", "Event type not found")
    assert start is not None and attendee is not None
    if start < ctx.now:
        return _bad(ctx, "Attempting to book a meeting in the past.")
    if start not in _free_slots(ctx.store, et, start, start + et["lengthInMinutes"] * 60, ctx.now):
        return _bad(ctx, "User either already has booking at this time or is not available")
    bid = ctx.store.next_id
    ctx.store.next_id += 1
    uid = f"bkNew{bid}".ljust(22, "x")
    b = booking_record(
        bid,
        uid,
        et,
        start,
        attendee["name"].strip(),
        attendee["email"].strip(),
        ctx.now,
        attendee["timeZone"],
    )
    if isinstance(body.get("guests"), list):
        b["guests"] = [str(g) for g in body["guests"]]
    if isinstance(body.get("metadata"), dict):
        b["metadata"] = body["metadata"]
    if isinstance(body.get("bookingFieldsResponses"), dict):
        b["bookingFieldsResponses"].update(body["bookingFieldsResponses"])
    ctx.store.bookings[uid] = b
    return _ok(_render_booking(b), 201)


async def cancel_booking(ctx: Ctx) -> Response:
    version = _version(ctx, BOOKINGS_VERSION)
    if isinstance(version, Response):
        return version
    uid = ctx.request.path_params["uid"]
    b = ctx.store.bookings.get(uid)
    if b is None:
        return error_response(
            ctx.request, 404, "NotFoundException", f"Booking with uid={uid} was not found in the database"
        )
    body, ok = await read_json(ctx.request)
    if not ok or (body is not None and not isinstance(body, dict)):
        return _bad(ctx, "Request body must be a JSON object")
    if b["status"] == "cancelled":
        return _bad(ctx, "This booking has already been cancelled.")
    reason = (body or {}).get("cancellationReason")
    b.update(
        status="cancelled", cancellationReason=reason, cancelledByEmail=seed.ACCOUNT_EMAIL, updatedAt=ctx.now
    )
    return _ok(_render_booking(b))
