"""Cal.com API v2: an API key (`cal_live_…`) as a bearer token, plus a `cal-api-version` header.

The header picks the endpoint version and differs per endpoint (bookings 2024-08-13, slots
2024-09-04); without it Cal.com silently answers with an older version. `base_url` is the API
host, `https://api.cal.com` unless the business self-hosts Cal.com; paths start with `/v2`.
A booking is the visitor's when one of its attendees has the visitor's email.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import (
    MAX_PAGES,
    body,
    display_name,
    forbidden,
    object_schema,
    same_email,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, ConfigField, Connector
from botctl.connectors.scopes import write_implies_read

if TYPE_CHECKING:
    import httpx

VENDOR = "Cal.com"
BOOKINGS_VERSION = "2024-08-13"
SLOTS_VERSION = "2024-09-04"
_TZ = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_+/-]{0,63}$", "description": "IANA time zone"}
_UID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}


def _data(response: httpx.Response) -> Any:
    payload = body(response, VENDOR)
    if isinstance(payload, dict) and payload.get("status") == "error":
        msg = (payload.get("error") or {}).get("message") or "request failed"
        raise ActionError(
            "upstream_error", f"Cal.com: {str(msg)[:200]}", upstream_status=response.status_code
        )
    return payload.get("data") if isinstance(payload, dict) else None


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    me = _data(await client.get("/v2/me")) or {}
    if not me.get("id"):
        raise ActionError("needs_reauth", "Cal.com did not accept the API key.")
    return f"{me.get('name') or me.get('username') or 'Cal.com user'} ({me.get('email')})"


def _booking(b: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": b.get("uid"),
        "title": b.get("title"),
        "status": b.get("status"),
        "start": b.get("start"),
        "end": b.get("end"),
        "meeting_url": b.get("meetingUrl") or b.get("location"),
    }


def _attendee_emails(b: dict[str, Any]) -> list[str]:
    return [a.get("email", "") for a in b.get("attendees") or [] if isinstance(a, dict)]


async def available_slots(ctx: ActionContext) -> dict[str, Any]:
    p = ctx.params
    today = datetime.now(UTC).date()
    start = date.fromisoformat(p["start"]) if p.get("start") else today
    end = date.fromisoformat(p["end"]) if p.get("end") else start + timedelta(days=7)
    if end < start:
        raise ActionError("invalid_params", "end must not be before start.")
    end = min(end, start + timedelta(days=31))
    data = (
        _data(
            await ctx.client.get(
                "/v2/slots",
                params={
                    "eventTypeId": p["event_type_id"],
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "timeZone": p.get("time_zone") or "UTC",
                },
                headers={"cal-api-version": SLOTS_VERSION},
            )
        )
        or {}
    )
    slots = [s.get("start") for day in sorted(data) for s in data[day] or [] if isinstance(s, dict)]
    return {"event_type_id": p["event_type_id"], "slots": slots[:200]}


async def book_meeting(ctx: ActionContext) -> dict[str, Any]:
    p = ctx.params
    attendee = {
        "name": display_name(ctx),
        "email": visitor_email(ctx),
        "timeZone": p.get("time_zone") or "UTC",
    }
    payload: dict[str, Any] = {"start": p["start"], "eventTypeId": p["event_type_id"], "attendee": attendee}
    if p.get("notes"):
        payload["bookingFieldsResponses"] = {"notes": p["notes"]}
    b = _data(await ctx.client.post("/v2/bookings", json=payload)) or {}
    if isinstance(b, list):  # recurring event types answer with every occurrence
        b = b[0] if b else {}
    touched(ctx, [b.get("uid")])
    return _booking(b)


async def list_my_bookings(ctx: ActionContext) -> dict[str, Any]:
    email = visitor_email(ctx)
    params: dict[str, Any] = {"attendeeEmail": email, "sortStart": "asc", "take": 100}
    if ctx.params.get("status"):
        params["status"] = ctx.params["status"]
    found: list[dict[str, Any]] = []
    skip, cursor, truncated = 0, None, True
    for _ in range(MAX_PAGES):
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        elif skip:
            q["skip"] = skip
        payload = body(await ctx.client.get("/v2/bookings", params=q), VENDOR)
        page = payload.get("data") or []
        found.extend(b for b in page if isinstance(b, dict))
        pg = payload.get("pagination") or {}
        # 2024-08-13 pages with take/skip (`hasNextPage`); 2026-05-01 with a cursor (`nextCursor`).
        cursor = pg.get("nextCursor")
        skip += len(page)
        more = bool(cursor) or pg.get("hasNextPage") or pg.get("hasMore")
        if not pg:
            more = len(page) >= params["take"]
        if not more or not page:
            truncated = False
            break
    # The vendor filter is a convenience; ownership is checked here, on every booking.
    out = [_booking(b) for b in found if any(same_email(e, email) for e in _attendee_emails(b))]
    touched(ctx, (b["id"] for b in out))
    return {"bookings": out, "truncated": truncated}


async def cancel_my_booking(ctx: ActionContext) -> dict[str, Any]:
    uid = ctx.params["booking_id"]
    email = visitor_email(ctx)
    try:
        b = _data(await ctx.client.get(f"/v2/bookings/{uid}")) or {}
    except ActionError as e:
        if e.code == "not_found":
            raise ActionError("not_found", "No such booking.", upstream_status=404) from None
        raise
    if isinstance(b, list):
        b = b[0] if b else {}
    attendees = _attendee_emails(b)
    # Only the booker (first attendee) may cancel; a guest cancelling would cancel for everyone.
    if not attendees or not same_email(attendees[0], email):
        raise forbidden("booking")
    touched(ctx, [uid])
    if str(b.get("status", "")).lower() in ("cancelled", "canceled"):
        return {"id": uid, "status": "cancelled", "already_cancelled": True}
    reason = ctx.params.get("reason") or "Cancelled by the attendee via the support assistant."
    out = (
        _data(await ctx.client.post(f"/v2/bookings/{uid}/cancel", json={"cancellationReason": reason})) or {}
    )
    if isinstance(out, list):
        out = out[0] if out else {}
    return {"id": uid, "status": out.get("status") or "cancelled"}


CONNECTOR = Connector(
    name="calcom",
    vendor=VENDOR,
    category="scheduling",
    auth="api_key",
    auth_style="bearer",
    # Cal.com API keys carry no scopes; these name the OAuth scopes the same calls would need.
    scopes=("PROFILE_READ", "BOOKING_READ", "BOOKING_WRITE", "SCHEDULE_READ"),
    base_url="{base_url}",
    config=(
        ConfigField(
            "base_url",
            "url",
            "the API host of a self-hosted Cal.com",
            default="https://api.cal.com",
            alias="--base-url",
        ),
    ),
    sandbox_path="/calcom",
    default_headers={"cal-api-version": BOOKINGS_VERSION},
    validate=validate,
    actions=(
        Action(
            name="available_slots",
            description="Open slots for an event type between two dates (at most 31 days).",
            params=object_schema(
                {
                    "event_type_id": {"type": "integer", "minimum": 1},
                    "start": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                    "end": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                    "time_zone": _TZ,
                },
                required=["event_type_id"],
            ),
            customer_specific=False,
            scopes=("SCHEDULE_READ",),
            idempotent=True,
            handler=available_slots,
        ),
        Action(
            name="book_meeting",
            description="Book a slot for the visitor (the visitor is the attendee).",
            params=object_schema(
                {
                    "event_type_id": {"type": "integer", "minimum": 1},
                    "start": {"type": "string", "format": "date-time", "maxLength": 40},
                    "time_zone": _TZ,
                    "notes": {"type": "string", "maxLength": 2000},
                },
                required=["event_type_id", "start"],
            ),
            customer_specific=True,
            scopes=("BOOKING_WRITE",),
            idempotent=False,
            handler=book_meeting,
        ),
        Action(
            name="list_my_bookings",
            description="The visitor's bookings.",
            params=object_schema(
                {
                    "status": {
                        "type": "string",
                        "enum": ["upcoming", "recurring", "past", "cancelled", "unconfirmed"],
                    }
                }
            ),
            customer_specific=True,
            scopes=("BOOKING_READ",),
            idempotent=True,
            handler=list_my_bookings,
        ),
        Action(
            name="cancel_my_booking",
            description="Cancel one of the visitor's bookings.",
            params=object_schema(
                {"booking_id": _UID, "reason": {"type": "string", "maxLength": 1000}}, required=["booking_id"]
            ),
            customer_specific=True,
            scopes=("BOOKING_READ", "BOOKING_WRITE"),
            idempotent=False,
            handler=cancel_my_booking,
        ),
    ),
    docs_url="https://cal.com/docs/api-reference/v2",
    broader_scopes=write_implies_read("_READ", "_WRITE"),
)
