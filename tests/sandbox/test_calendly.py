"""Calendly API v2 in the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest


@pytest.fixture
def cal(creds):
    c = creds["calendly"]
    with httpx.Client(
        base_url=c["base_url"], headers={"Authorization": "Bearer " + c["access_token"]}
    ) as client:
        yield client


@pytest.fixture
def me(cal):
    return cal.get("/users/me").json()["resource"]


def test_users_me(cal, me, seed):
    assert me["uri"].endswith("/calendly/users/" + seed["_meta"]["accounts"]["calendly"]["user"])
    assert me["email"] == "support@acme.example"
    assert me["current_organization"].endswith("/organizations/ACMEORG000000001")
    r = cal.get("/users/me")
    assert r.headers["x-ratelimit-limit"] == "500"


def test_bad_expired_and_revoked_tokens(sandbox, creds):
    url = creds["calendly"]["base_url"] + "/users/me"
    r = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert (r.status_code, r.json()) == (
        401,
        {"title": "Unauthenticated", "message": "The access token is invalid"},
    )
    assert httpx.get(url).status_code == 401
    expired = sandbox.issue_token("calendly", ["users:read"], ttl=0)["access_token"]
    r = httpx.get(url, headers={"Authorization": "Bearer " + expired})
    assert r.json()["message"] == "The access token expired"
    token = sandbox.issue_token("calendly", ["users:read"], ttl=60)["access_token"]
    sandbox.revoke_token(token)
    assert httpx.get(url, headers={"Authorization": "Bearer " + token}).status_code == 401


def test_missing_scope_is_permission_denied(creds, me, seed):
    c = creds["calendly"]
    uuid = seed["calendly"]["ada@example.com"]["scheduled_events"][0]
    r = httpx.post(f"{c['base_url']}/scheduled_events/{uuid}/cancellation", json={"reason": "x"},
                   headers={"Authorization": "Bearer " + c["limited"]["access_token"]})  # fmt: skip
    assert r.status_code == 403
    assert r.json()["title"] == "Permission Denied"


def test_event_types_and_available_times(cal, me):
    types = cal.get("/event_types", params={"user": me["uri"]}).json()["collection"]
    assert {t["name"] for t in types} == {"Intro call", "Support session"}
    start = datetime.now(UTC) + timedelta(days=1)
    end = start + timedelta(days=6)
    r = cal.get("/event_type_available_times", params={"event_type": types[0]["uri"],
                "start_time": start.isoformat(), "end_time": end.isoformat()})  # fmt: skip
    assert r.status_code == 200
    slots = r.json()["collection"]
    assert slots and all(s["status"] == "available" and s["start_time"].endswith("Z") for s in slots)
    past = cal.get("/event_type_available_times", params={"event_type": types[0]["uri"],
                   "start_time": "2020-01-01T00:00:00Z", "end_time": "2020-01-02T00:00:00Z"})  # fmt: skip
    assert past.status_code == 400 and past.json()["title"] == "Invalid Argument"
    assert cal.get("/event_types").status_code == 400


def test_scheduled_events_by_invitee_with_pagination(cal, me, seed):
    ada = seed["calendly"]["ada@example.com"]["scheduled_events"]
    seen, params = [], {"user": me["uri"], "invitee_email": "ada@example.com", "count": 2}
    url = "/scheduled_events"
    while url:
        body = cal.get(url, params=params).json()
        seen += [e["uri"].rsplit("/", 1)[1] for e in body["collection"]]
        url, params = body["pagination"]["next_page"], None
    assert sorted(seen) == sorted(ada)
    active = cal.get("/scheduled_events", params={"user": me["uri"], "invitee_email": "ada@example.com",
                                                  "status": "active"}).json()["collection"]  # fmt: skip
    assert len(active) == 4 and all(e["status"] == "active" for e in active)
    none = cal.get(
        "/scheduled_events", params={"user": me["uri"], "invitee_email": "linus@example.com"}
    ).json()
    assert none["collection"] == [] and none["pagination"]["next_page"] is None
    other = cal.get("/scheduled_events", params={"user": "https://api.calendly.com/users/SOMEONEELSE00001"})
    assert other.status_code == 403


def test_event_invitees_and_cancellation(cal, seed):
    uuid = seed["calendly"]["grace@example.com"]["scheduled_events"][0]
    event = cal.get(f"/scheduled_events/{uuid}").json()["resource"]
    assert event["status"] == "active" and "cancellation" not in event
    invitees = cal.get(f"/scheduled_events/{uuid}/invitees").json()["collection"]
    assert [i["email"] for i in invitees] == ["grace@example.com"]
    r = cal.post(f"/scheduled_events/{uuid}/cancellation", json={"reason": "Grace asked"})
    assert r.status_code == 201
    assert r.json()["resource"]["reason"] == "Grace asked"
    assert r.json()["resource"]["canceler_type"] == "host"
    event = cal.get(f"/scheduled_events/{uuid}").json()["resource"]
    assert event["status"] == "canceled" and event["cancellation"]["reason"] == "Grace asked"
    again = cal.post(f"/scheduled_events/{uuid}/cancellation", json={"reason": "again"})
    assert again.status_code == 403
    assert cal.get("/scheduled_events/NOSUCHEVENT00001").status_code == 404


def test_book_through_the_scheduling_api(cal, me):
    types = cal.get("/event_types", params={"user": me["uri"]}).json()["collection"]
    start = datetime.now(UTC) + timedelta(days=2)
    slots = cal.get(
        "/event_type_available_times",
        params={
            "event_type": types[0]["uri"],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(days=5)).isoformat(),
        },
    ).json()
    slot = slots["collection"][0]["start_time"]
    body = {
        "event_type": types[0]["uri"],
        "start_time": slot,
        "invitee": {"email": "linus@example.com", "name": "Linus Torvalds", "timezone": "Europe/Helsinki"},
    }
    r = cal.post("/invitees", json=body)
    assert r.status_code == 201
    assert r.json()["resource"]["email"] == "linus@example.com"
    taken = cal.post("/invitees", json=body)
    assert taken.status_code == 400
    assert taken.json()["details"][0]["code"] == "already_filled"
    events = cal.get("/scheduled_events", params={"user": me["uri"], "invitee_email": "linus@example.com"})
    assert len(events.json()["collection"]) == 1
