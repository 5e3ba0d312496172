"""Cal.com's seeded data: event types, bookings and the store that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botctl.sandbox import seed

BOOKINGS_VERSION = "2024-08-13"
BOOKINGS_CURSOR_VERSION = "2026-05-01"
SLOTS_VERSION = "2024-09-04"
EVENT_TYPES_VERSION = "2024-06-14"
MAX_TAKE = 250
BOOKING_STATUSES = ("upcoming", "recurring", "past", "cancelled", "unconfirmed")

HOST = {
    "id": seed.CALCOM_USER_ID,
    "name": seed.ACCOUNT_NAME,
    "email": seed.ACCOUNT_EMAIL,
    "username": "acme",
    "timeZone": "Europe/London",
}


@dataclass
class CalcomStore:
    bookings: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_types: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 6000


def event_type(eid: int, title: str, slug: str, minutes: int) -> dict[str, Any]:
    return {
        "id": eid,
        "lengthInMinutes": minutes,
        "lengthInMinutesOptions": [],
        "title": title,
        "slug": slug,
        "description": f"{title} with {seed.ACCOUNT_NAME}",
        "locations": [{"type": "integration", "integration": "cal-video"}],
        "bookingFields": [],
        "disableGuests": False,
        "slotInterval": None,
        "minimumBookingNotice": 120,
        "beforeEventBuffer": 0,
        "afterEventBuffer": 0,
        "recurrence": None,
        "metadata": {},
        "price": 0,
        "currency": "usd",
        "lockTimeZoneToggleOnBookingPage": False,
        "seatsPerTimeSlot": None,
        "forwardParamsSuccessRedirect": None,
        "successRedirectUrl": None,
        "isInstantEvent": False,
        "seatsShowAvailabilityCount": True,
        "scheduleId": 4001,
        "ownerId": seed.CALCOM_USER_ID,
        "users": [
            {
                "id": seed.CALCOM_USER_ID,
                "name": seed.ACCOUNT_NAME,
                "username": "acme",
                "avatarUrl": None,
                "weekStart": "Monday",
                "brandColor": None,
                "darkBrandColor": None,
                "metadata": {},
            }
        ],
        "hidden": False,
        "bookingUrl": f"https://cal.com/acme/{slug}",
    }


def booking_record(
    bid: int,
    uid: str,
    et: dict[str, Any],
    start: float,
    name: str,
    email: str,
    created: float,
    tz: str = "Europe/London",
) -> dict[str, Any]:
    end = start + et["lengthInMinutes"] * 60
    return {
        "id": bid,
        "uid": uid,
        "title": f"{et['title']} between {seed.ACCOUNT_NAME} and {name}",
        "description": "",
        "hosts": [dict(HOST)],
        "status": "accepted",
        "cancellationReason": None,
        "cancelledByEmail": None,
        "reschedulingReason": None,
        "rescheduledFromUid": None,
        "start": start,
        "end": end,
        "duration": et["lengthInMinutes"],
        "eventTypeId": et["id"],
        "eventType": {"id": et["id"], "slug": et["slug"]},
        "meetingUrl": f"https://app.cal.com/video/{uid}",
        "location": f"https://app.cal.com/video/{uid}",
        "absentHost": False,
        "createdAt": created,
        "updatedAt": created,
        "metadata": {},
        "rating": None,
        "icsUid": f"{uid}@Cal.com",
        "attendees": [
            {
                "name": name,
                "email": email,
                "timeZone": tz,
                "phoneNumber": None,
                "language": "en",
                "absent": False,
            }
        ],
        "guests": [],
        "bookingFieldsResponses": {"name": name, "email": email, "guests": []},
    }


# Sandbox-only credential: it opens nothing but this local fake (the real key's shape).
API_KEY = "cal_test_5a4e1b0c8d2f4e6a9b7c3d1e0f2a4b6c"
