"""Calendly against the sandbox: invitee-based ownership, page_token pagination, cancellation."""

from __future__ import annotations

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import GRACE, LINUS


def events(h, who="ada@example.com"):
    return h.seed["calendly"][who]["scheduled_events"]


def test_validate(h):
    assert "support@acme.example" in h.validate("calendly")
    with pytest.raises(ActionError) as e:
        h.validate("calendly", credential={"access_token": Secret("nope")})
    assert e.value.code == "needs_reauth"


def test_available_times(h):
    out = h.ok("calendly.available_times", visitor=None)
    assert {t["event_type"] for t in out["choose_event_type"]} == set(
        h.seed["_meta"]["accounts"]["calendly"]["event_types"]
    )
    et = out["choose_event_type"][0]["event_type"]
    times = h.ok("calendly.available_times", {"event_type": et}, visitor=None)
    assert times["event_type"] == et and times["times"]
    assert set(times["times"][0]) == {"start_time", "scheduling_url"}


def test_list_my_bookings(h):
    out = h.ok("calendly.list_my_bookings")
    ids = {b["id"] for b in out["bookings"]}
    assert ids <= set(events(h)) and len(ids) == 4  # the canceled one is left out by default
    everything = h.ok("calendly.list_my_bookings", {"include_canceled": True})
    assert {b["id"] for b in everything["bookings"]} == set(events(h))
    assert h.ok("calendly.list_my_bookings", visitor=LINUS)["bookings"] == []


def test_list_follows_page_tokens(h):
    h.sb.configure(max_page_size=2)
    out = h.ok("calendly.list_my_bookings", {"include_canceled": True})
    assert {b["id"] for b in out["bookings"]} == set(events(h))
    assert h.route_requests("calendly", "GET /scheduled_events") == 3


def test_cancel_my_booking(h):
    uuid = events(h)[0]
    out = h.ok("calendly.cancel_my_booking", {"booking_id": uuid, "reason": "cannot make it"})
    assert out == {"id": uuid, "status": "canceled"}
    again = h.ok("calendly.cancel_my_booking", {"booking_id": uuid})
    assert again["already_canceled"] is True
    assert uuid not in {b["id"] for b in h.ok("calendly.list_my_bookings")["bookings"]}


def test_cancel_someone_elses_booking_is_forbidden(h):
    uuid = events(h, "grace@example.com")[0]
    err = h.fail("calendly.cancel_my_booking", {"booking_id": uuid})
    assert err.code == "forbidden"
    assert h.route_requests("calendly", "POST /scheduled_events/{uuid}/cancellation") == 0
    assert uuid in {b["id"] for b in h.ok("calendly.list_my_bookings", visitor=GRACE)["bookings"]}


def test_cancel_past_or_unknown(h):
    past = events(h)[4]
    assert h.fail("calendly.cancel_my_booking", {"booking_id": past}).code == "invalid_params"
    assert h.fail("calendly.cancel_my_booking", {"booking_id": "NOSUCHEVENT00001"}).code == "not_found"


def test_limited_token_cannot_cancel(h):
    err = h.fail(
        "calendly.cancel_my_booking",
        {"booking_id": events(h)[0]},
        credential=h.credential("calendly", limited=True),
    )
    assert err.code == "missing_scope"


def test_read_survives_two_500s_and_honours_429(h):
    h.sb.fault("calendly", "500", count=2)
    run = h.run("calendly.list_my_bookings")
    assert run.error is None and len(run.waits) == 2
    h.sb.fault("calendly", "429", count=1, retry_after=3)
    run = h.run("calendly.list_my_bookings")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 3
