"""Zendesk Support API v2 in the sandbox."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def zd(creds):
    c = creds["zendesk"]
    with httpx.Client(
        base_url=c["base_url"], headers={"Authorization": "Bearer " + c["access_token"]}
    ) as client:
        yield client


def test_who_am_i_with_oauth_token_and_api_token(creds, zd):
    me = zd.get("/api/v2/users/me.json")
    assert me.status_code == 200
    assert me.json()["user"]["id"] == 1001
    assert me.json()["user"]["role"] == "admin"
    assert me.headers["x-rate-limit"] == "700"
    assert "x-request-id" in me.headers
    api = creds["zendesk"]["api_token"]
    r = httpx.get(
        creds["zendesk"]["base_url"] + "/api/v2/users/me.json", auth=(api["basic_username"], api["token"])
    )
    assert r.status_code == 200
    assert r.json()["user"]["email"] == api["email"]


def test_anonymous_me_is_a_200_with_a_null_id(creds):
    r = httpx.get(creds["zendesk"]["base_url"] + "/api/v2/users/me.json")
    assert r.status_code == 200
    assert r.json()["user"]["id"] is None


def test_bad_credentials_get_zendesk_401s(sandbox, creds):
    base = creds["zendesk"]["base_url"]
    r = httpx.get(base + "/api/v2/tickets/101.json")
    assert (r.status_code, r.json()) == (401, {"error": "Couldn't authenticate you"})
    r = httpx.get(base + "/api/v2/tickets/101.json", auth=("support@acme.example/token", "wrong"))
    assert (r.status_code, r.json()) == (401, {"error": "Couldn't authenticate you"})
    api = creds["zendesk"]["api_token"]
    r = httpx.get(base + "/api/v2/tickets/101.json", auth=("someone@else.example/token", api["token"]))
    assert r.status_code == 401
    expired = sandbox.issue_token("zendesk", ["read", "write"], ttl=0)["access_token"]
    r = httpx.get(base + "/api/v2/users/me.json", headers={"Authorization": "Bearer " + expired})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"


def test_missing_scope_is_a_403(creds):
    c = creds["zendesk"]
    headers = {"Authorization": "Bearer " + c["limited"]["access_token"]}
    assert httpx.get(c["base_url"] + "/api/v2/tickets/101.json", headers=headers).status_code == 200
    r = httpx.put(
        c["base_url"] + "/api/v2/tickets/101.json",
        headers=headers,
        json={"ticket": {"comment": {"body": "x"}}},
    )
    assert r.status_code == 403
    assert r.json() == {
        "error": "Forbidden",
        "description": "You are missing the following required scopes: write",
    }


def test_unknown_subdomain_is_no_help_desk(creds, sandbox):
    r = httpx.get(sandbox.url + "/zendesk/nosuch/api/v2/users/me.json",
                  headers={"Authorization": "Bearer " + creds["zendesk"]["access_token"]})  # fmt: skip
    assert r.status_code == 404
    assert r.json()["error"]["title"] == "No help desk at nosuch.zendesk.com"


def test_search_user_by_email(zd, seed):
    r = zd.get("/api/v2/users/search.json", params={"query": "email:ADA@example.com"})
    users = r.json()["users"]
    assert [u["id"] for u in users] == [seed["zendesk"]["ada@example.com"]["user_id"]]
    assert users[0]["role"] == "end-user"
    assert (
        zd.get("/api/v2/users/search.json", params={"query": "email:nobody@example.com"}).json()["users"]
        == []
    )


def test_requested_tickets_cursor_pagination(zd, seed):
    ada = seed["zendesk"]["ada@example.com"]
    url = f"/api/v2/users/{ada['user_id']}/tickets/requested.json"
    seen, params, pages = [], {"page[size]": 2}, 0
    while True:
        body = zd.get(url, params=params).json()
        seen += [t["id"] for t in body["tickets"]]
        pages += 1
        assert set(body["meta"]) == {"has_more", "after_cursor", "before_cursor"}
        if not body["meta"]["has_more"]:
            break
        params = dict(httpx.URL(body["links"]["next"]).params)
    assert seen == ada["tickets"]
    assert pages == 3
    linus = seed["zendesk"]["linus@example.com"]["user_id"]
    assert (
        zd.get(f"/api/v2/users/{linus}/tickets/requested.json", params={"page[size]": 2}).json()["tickets"]
        == []
    )
    assert zd.get("/api/v2/users/999999/tickets/requested.json").status_code == 404


def test_requested_tickets_offset_pagination_and_config_cap(sandbox, zd, seed):
    ada = seed["zendesk"]["ada@example.com"]
    body = zd.get(f"/api/v2/users/{ada['user_id']}/tickets/requested.json").json()
    assert body["count"] == 5 and body["next_page"] is None and len(body["tickets"]) == 5
    sandbox.configure(max_page_size=2)
    body = zd.get(f"/api/v2/users/{ada['user_id']}/tickets/requested.json").json()
    assert len(body["tickets"]) == 2 and body["next_page"]


def test_ticket_shape(zd, seed):
    tid = seed["zendesk"]["grace@example.com"]["tickets"][0]
    t = zd.get(f"/api/v2/tickets/{tid}.json").json()["ticket"]
    assert t["id"] == tid
    assert t["requester_id"] == seed["zendesk"]["grace@example.com"]["user_id"]
    assert t["status"] in ("new", "open", "pending", "hold", "solved", "closed")
    assert t["url"].endswith(f"/zendesk/acme/api/v2/tickets/{tid}.json")
    r = zd.get("/api/v2/tickets/999999.json")
    assert (r.status_code, r.json()) == (404, {"error": "RecordNotFound", "description": "Not found"})


def test_create_ticket_creates_the_requester_then_reuses_them(zd):
    payload = {"ticket": {"subject": "Where is my parcel?", "comment": {"body": "It is late."},
                          "requester": {"name": "Alan Turing", "email": "alan@example.com"}, "priority": "high"}}  # fmt: skip
    r = zd.post("/api/v2/tickets.json", json=payload)
    assert r.status_code == 201
    ticket = r.json()["ticket"]
    assert r.headers["location"] == ticket["url"]
    assert ticket["status"] == "new" and ticket["priority"] == "high"
    users = zd.get("/api/v2/users/search.json", params={"query": "email:alan@example.com"}).json()["users"]
    assert len(users) == 1 and users[0]["name"] == "Alan Turing"
    assert ticket["requester_id"] == users[0]["id"]
    again = zd.post("/api/v2/tickets.json", json=payload).json()["ticket"]
    assert again["requester_id"] == users[0]["id"]
    assert (
        zd.get("/api/v2/users/search.json", params={"query": "email:alan@example.com"}).json()["count"] == 1
    )


def test_create_ticket_validation(zd):
    r = zd.post("/api/v2/tickets.json", json={"ticket": {"subject": "No body"}})
    assert r.status_code == 422
    assert r.json()["error"] == "RecordInvalid"
    assert r.json()["details"]["description"][0]["error"] == "BlankValue"
    r = zd.post("/api/v2/tickets.json", json={"ticket": {"comment": {"body": "x"}, "priority": "asap"}})
    assert r.status_code == 422 and "priority" in r.json()["details"]


def test_add_comment_and_list_comments(zd, seed):
    tid = seed["zendesk"]["ada@example.com"]["tickets"][2]  # a "new" ticket
    before = zd.get(f"/api/v2/tickets/{tid}/comments.json").json()["count"]
    r = zd.put(
        f"/api/v2/tickets/{tid}.json",
        json={"ticket": {"comment": {"body": "We shipped it.", "public": True}}},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["ticket"]["status"] == "open"
    assert body["audit"]["events"][0]["type"] == "Comment"
    comments = zd.get(f"/api/v2/tickets/{tid}/comments.json").json()
    assert comments["count"] == before + 1
    assert comments["comments"][-1]["body"] == "We shipped it."
    assert comments["comments"][-1]["author_id"] == 1001


def test_closed_ticket_cannot_be_updated(zd, seed):
    closed = seed["zendesk"]["ada@example.com"]["tickets"][4]
    r = zd.put(f"/api/v2/tickets/{closed}.json", json={"ticket": {"comment": {"body": "hello?"}}})
    assert r.status_code == 422
    assert "closed" in r.json()["details"]["status"][0]["description"]
