"""Cal.com against the sandbox: attendee ownership, take/skip pagination, booking and cancelling."""

from __future__ import annotations

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import LINUS


def uids(h, who="ada@example.com"):
    return h.seed["calcom"][who]["bookings"]


def test_validate(h):
    assert "support@acme.example" in h.validate("calcom")
    with pytest.raises(ActionError) as e:
        h.validate("calcom", credential={"api_key": Secret("cal_test_wrong")})
    assert e.value.code == "needs_reauth"


def test_list_my_bookings(h):
    out = h.ok("calcom.list_my_bookings")
    assert {b["id"] for b in out["bookings"]} == set(uids(h))
    upcoming = h.ok("calcom.list_my_bookings", {"status": "upcoming"})
    assert {b["id"] for b in upcoming["bookings"]} < set(uids(h))
    assert h.ok("calcom.list_my_bookings", visitor=LINUS)["bookings"] == []


def test_list_follows_pagination(h):
    h.sb.configure(max_page_size=2)
    out = h.ok("calcom.list_my_bookings")
    assert {b["id"] for b in out["bookings"]} == set(uids(h))
    assert h.route_requests("calcom", "GET /v2/bookings") == 3


def test_slots_book_and_cancel(h):
    et = h.seed["_meta"]["accounts"]["calcom"]["event_types"][0]
    slots = h.ok("calcom.available_slots", {"event_type_id": et, "time_zone": "Europe/London"}, visitor=None)[
        "slots"
    ]
    assert slots
    booked = h.ok(
        "calcom.book_meeting", {"event_type_id": et, "start": slots[0], "time_zone": "Europe/London"}
    )
    assert booked["id"] and booked["status"] == "accepted"
    assert booked["id"] in {b["id"] for b in h.ok("calcom.list_my_bookings")["bookings"]}
    out = h.ok("calcom.cancel_my_booking", {"booking_id": booked["id"]})
    assert out["status"] == "cancelled"
    assert h.ok("calcom.cancel_my_booking", {"booking_id": booked["id"]})["already_cancelled"] is True


def test_cancel_someone_elses_booking_is_forbidden(h):
    uid = uids(h, "grace@example.com")[0]
    err = h.fail("calcom.cancel_my_booking", {"booking_id": uid})
    assert err.code == "forbidden" and "Grace" not in err.message
    assert h.route_requests("calcom", "POST /v2/bookings/{uid}/cancel") == 0
    assert h.fail("calcom.cancel_my_booking", {"booking_id": "nosuchbooking"}).code == "not_found"


def test_read_survives_two_500s_and_honours_429(h):
    h.sb.fault("calcom", "500", count=2)
    run = h.run("calcom.list_my_bookings")
    assert run.error is None and len(run.waits) == 2
    h.sb.fault("calcom", "429", count=1, retry_after=2)
    run = h.run("calcom.list_my_bookings")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 2
