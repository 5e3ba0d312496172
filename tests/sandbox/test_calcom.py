"""Cal.com API v2 in the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

BOOKINGS = {"cal-api-version": "2024-08-13"}


@pytest.fixture
def cc(creds):
    c = creds["calcom"]
    with httpx.Client(base_url=c["base_url"], headers={"Authorization": "Bearer " + c["api_key"]}) as client:
        yield client


def test_me_and_rate_limit_headers(cc):
    r = cc.get("/me")
    assert r.status_code == 200
    assert r.json()["status"] == "success"
    assert r.json()["data"]["email"] == "support@acme.example"
    assert r.headers["x-ratelimit-limit-default"] == "120"


def test_bad_key_error_shape(creds, sandbox):
    r = httpx.get(creds["calcom"]["base_url"] + "/me", headers={"Authorization": "Bearer cal_test_nope"})
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == "error" and body["path"] == "/v2/me"
    assert body["error"]["code"] == "UnauthorizedException"
    assert httpx.get(creds["calcom"]["base_url"] + "/me").status_code == 401
    expired = sandbox.issue_token("calcom", ["PROFILE_READ"], ttl=0)["access_token"]
    r = httpx.get(creds["calcom"]["base_url"] + "/me", headers={"Authorization": "Bearer " + expired})
    assert r.status_code == 401


def test_oauth_token_scopes_are_enforced(sandbox, creds):
    token = sandbox.issue_token("calcom", ["PROFILE_READ"], ttl=60)["access_token"]
    headers = {"Authorization": "Bearer " + token, **BOOKINGS}
    assert httpx.get(creds["calcom"]["base_url"] + "/me", headers=headers).status_code == 200
    r = httpx.get(creds["calcom"]["base_url"] + "/bookings", headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "ForbiddenException"


def test_missing_api_version_is_refused(cc):
    r = cc.get("/bookings")
    assert r.status_code == 400
    assert "cal-api-version" in r.json()["error"]["message"]


def test_list_bookings_take_skip_pagination(cc, seed):
    ada = seed["calcom"]["ada@example.com"]["bookings"]
    uids, skip = [], 0
    while True:
        body = cc.get("/bookings", params={"attendeeEmail": "ada@example.com", "take": 2, "skip": skip},
                      headers=BOOKINGS).json()  # fmt: skip
        uids += [b["uid"] for b in body["data"]]
        assert body["pagination"]["totalItems"] == 5
        if not body["pagination"]["hasNextPage"]:
            break
        skip += 2
    assert sorted(uids) == sorted(ada)
    upcoming = cc.get("/bookings", params={"attendeeEmail": "ada@example.com", "status": "upcoming"},
                      headers=BOOKINGS).json()["data"]  # fmt: skip
    assert len(upcoming) == 3 and all(b["status"] == "accepted" for b in upcoming)
    cancelled = cc.get("/bookings", params={"attendeeEmail": "ada@example.com", "status": "cancelled"},
                       headers=BOOKINGS).json()["data"]  # fmt: skip
    assert [b["status"] for b in cancelled] == ["cancelled"]
    assert (
        cc.get("/bookings", params={"attendeeEmail": "linus@example.com"}, headers=BOOKINGS).json()["data"]
        == []
    )


def test_list_bookings_cursor_version(cc, seed):
    headers = {"cal-api-version": "2026-05-01"}
    uids, cursor = [], None
    while True:
        params = {"attendeeEmail": "ada@example.com", "take": 2, **({"cursor": cursor} if cursor else {})}
        body = cc.get("/bookings", params=params, headers=headers).json()
        uids += [b["uid"] for b in body["data"]]
        if not body["pagination"]["hasMore"]:
            break
        cursor = body["pagination"]["nextCursor"]
    assert sorted(uids) == sorted(seed["calcom"]["ada@example.com"]["bookings"])


def test_slots_create_get_and_cancel_booking(cc, seed):
    et = seed["_meta"]["accounts"]["calcom"]["event_types"][0]
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    slots = cc.get("/slots", params={"eventTypeId": et, "start": day.isoformat(),
                   "end": (day + timedelta(days=4)).isoformat()}, headers={"cal-api-version": "2024-09-04"})  # fmt: skip
    assert slots.status_code == 200
    first_day = sorted(slots.json()["data"])[0]
    start = slots.json()["data"][first_day][0]["start"]
    body = {
        "start": start,
        "eventTypeId": et,
        "attendee": {"name": "Linus Torvalds", "email": "linus@example.com", "timeZone": "Europe/Helsinki"},
    }
    r = cc.post("/bookings", json=body, headers=BOOKINGS)
    assert r.status_code == 201, r.text
    booking = r.json()["data"]
    assert booking["attendees"][0]["email"] == "linus@example.com" and booking["status"] == "accepted"
    assert cc.post("/bookings", json=body, headers=BOOKINGS).status_code == 400  # slot now taken
    got = cc.get(f"/bookings/{booking['uid']}", headers=BOOKINGS).json()["data"]
    assert got["id"] == booking["id"]
    r = cc.post(
        f"/bookings/{booking['uid']}/cancel", json={"cancellationReason": "changed plans"}, headers=BOOKINGS
    )
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "cancelled"
    assert r.json()["data"]["cancellationReason"] == "changed plans"
    again = cc.post(f"/bookings/{booking['uid']}/cancel", json={}, headers=BOOKINGS)
    assert again.status_code == 400
    missing = cc.get("/bookings/nosuchuid", headers=BOOKINGS)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFoundException"


def test_create_booking_validation(cc):
    r = cc.post("/bookings", json={"eventTypeId": 301, "attendee": {"name": "X"}}, headers=BOOKINGS)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "BadRequestException"


def test_event_types(cc):
    r = cc.get("/event-types", headers={"cal-api-version": "2024-06-14"})
    assert r.status_code == 200
    assert {e["slug"] for e in r.json()["data"]} == {"intro-call", "support-session"}
