"""Freshdesk API v2 in the sandbox."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def fd(creds):
    c = creds["freshdesk"]
    with httpx.Client(base_url=c["base_url"], auth=(c["api_key"], "X")) as client:
        yield client


def test_agents_me(fd):
    r = fd.get("/api/v2/agents/me")
    assert r.status_code == 200
    assert r.json()["contact"]["email"] == "support@acme.example"
    assert r.headers["x-ratelimit-total"] == "400"
    assert "x-ratelimit-remaining" in r.headers


def test_bad_key_is_invalid_credentials(creds):
    base = creds["freshdesk"]["base_url"]
    for auth in ((("wrong", "X")), None):
        r = httpx.get(base + "/api/v2/agents/me", auth=auth)
        assert r.status_code == 401
        assert r.json() == {
            "code": "invalid_credentials",
            "message": "You have to be logged in to perform this action.",
        }


def test_unknown_domain_is_a_404(sandbox, creds):
    r = httpx.get(
        sandbox.url + "/freshdesk/nosuch/api/v2/agents/me", auth=(creds["freshdesk"]["api_key"], "X")
    )
    assert r.status_code == 404


def test_list_tickets_by_email_follows_link_next(sandbox, fd, seed):
    ids, url, params = [], "/api/v2/tickets", {"email": "ada@example.com", "per_page": 2}
    while url:
        r = fd.get(url, params=params)
        assert r.status_code == 200
        ids += [t["id"] for t in r.json()]
        assert all("description" not in t for t in r.json())
        url = r.links.get("next", {}).get("url")
        params = None
    assert sorted(ids) == sorted(seed["freshdesk"]["ada@example.com"]["tickets"])
    assert fd.get("/api/v2/tickets", params={"email": "linus@example.com"}).json() == []
    r = fd.get("/api/v2/tickets", params={"email": "nobody@example.com"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "email"
    assert fd.get("/api/v2/tickets", params={"per_page": 101}).status_code == 400


def test_get_ticket_with_conversations(fd, seed):
    tid = seed["freshdesk"]["ada@example.com"]["tickets"][1]
    t = fd.get(f"/api/v2/tickets/{tid}", params={"include": "conversations,requester"}).json()
    assert t["id"] == tid
    assert t["requester"]["email"] == "ada@example.com"
    assert isinstance(t["conversations"], list)
    assert "description_text" in t
    missing = fd.get("/api/v2/tickets/999999")
    assert missing.status_code == 404 and missing.content == b""


def test_create_ticket_requires_status_and_priority(fd):
    r = fd.post(
        "/api/v2/tickets", json={"subject": "Help", "description": "Please", "email": "ada@example.com"}
    )
    assert r.status_code == 400
    body = r.json()
    assert body["description"] == "Validation failed"
    assert {e["field"] for e in body["errors"]} == {"status", "priority"}


def test_create_ticket_reply_and_note(fd, seed):
    r = fd.post("/api/v2/tickets", json={"subject": "Broken mug", "description": "<p>It arrived broken</p>",
                                         "email": "newbie@example.com", "name": "New Bie", "status": 2,
                                         "priority": 1})  # fmt: skip
    assert r.status_code == 201
    ticket = r.json()
    contacts = fd.get("/api/v2/contacts", params={"email": "newbie@example.com"}).json()
    assert [c["id"] for c in contacts] == [ticket["requester_id"]]
    reply = fd.post(f"/api/v2/tickets/{ticket['id']}/reply", json={"body": "Sorry! A new one is on its way."})
    assert reply.status_code == 201
    assert reply.json()["private"] is False and reply.json()["ticket_id"] == ticket["id"]
    note = fd.post(f"/api/v2/tickets/{ticket['id']}/notes", json={"body": "Refund approved", "private": True})
    assert note.status_code == 201 and note.json()["private"] is True
    convs = fd.get(f"/api/v2/tickets/{ticket['id']}/conversations").json()
    assert [c["id"] for c in convs] == [reply.json()["id"], note.json()["id"]]
    assert fd.post(f"/api/v2/tickets/{ticket['id']}/reply", json={}).status_code == 400
    assert fd.post("/api/v2/tickets/999999/reply", json={"body": "x"}).status_code == 404
