"""HubSpot CRM v3 in the sandbox."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def hs(creds):
    c = creds["hubspot"]
    with httpx.Client(
        base_url=c["base_url"], headers={"Authorization": "Bearer " + c["access_token"]}
    ) as client:
        yield client


def search_email(hs, email):
    return hs.post("/crm/v3/objects/contacts/search", json={
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
        "properties": ["email", "firstname", "lastname"]})  # fmt: skip


def test_account_details(hs):
    r = hs.get("/account-info/v3/details")
    assert r.status_code == 200
    assert r.json()["portalId"] == 4000001
    assert "x-hubspot-ratelimit-daily" in r.headers
    assert "x-hubspot-correlation-id" in r.headers


def test_auth_errors(sandbox, creds):
    url = creds["hubspot"]["base_url"] + "/account-info/v3/details"
    r = httpx.get(url)
    assert r.status_code == 401
    assert r.json()["category"] == "INVALID_AUTHENTICATION" and r.json()["status"] == "error"
    assert "correlationId" in r.json()
    assert httpx.get(url, headers={"Authorization": "Bearer pat-na1-nope"}).status_code == 401
    expired = sandbox.issue_token("hubspot", ["oauth"], ttl=-120)["access_token"]
    r = httpx.get(url, headers={"Authorization": "Bearer " + expired})
    assert r.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert "expired 2 minute(s) ago" in r.json()["message"]


def test_introspection_of_oauth_tokens(sandbox, creds):
    url = creds["hubspot"]["base_url"] + "/oauth/v3/token/introspect"
    token = sandbox.issue_token("hubspot", ["oauth", "crm.objects.contacts.read"], ttl=1800)["access_token"]
    form = {"token": token, "client_id": "cid", "client_secret": "secret"}
    body = httpx.post(url, data=form).json()
    assert body["active"] is True and body["hub_id"] == 4000001
    assert "crm.objects.contacts.read" in body["scopes"]
    sandbox.revoke_token(token)
    assert httpx.post(url, data=form).json() == {"active": False}
    assert httpx.post(url, data={"token": token}).status_code == 400


def test_missing_scope(creds):
    c = creds["hubspot"]
    r = httpx.post(c["base_url"] + "/crm/v3/objects/contacts", json={"properties": {"email": "x@example.com"}},
                   headers={"Authorization": "Bearer " + c["limited"]["access_token"]})  # fmt: skip
    assert r.status_code == 403
    assert r.json()["category"] == "MISSING_SCOPES"
    assert r.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]


def test_search_get_and_patch_contact(hs, seed):
    ada_id = seed["hubspot"]["ada@example.com"]["contact_id"]
    body = search_email(hs, "Ada@Example.com").json()
    assert body["total"] == 1
    assert body["results"][0]["id"] == ada_id
    assert body["results"][0]["properties"]["firstname"] == "Ada"
    assert search_email(hs, "linus@example.com").json() == {"total": 0, "results": []}
    got = hs.get(f"/crm/v3/objects/contacts/{ada_id}", params={"properties": "email,phone"}).json()
    assert got["properties"]["phone"] is None and got["properties"]["email"] == "ada@example.com"
    by_email = hs.get("/crm/v3/objects/contacts/grace@example.com", params={"idProperty": "email"})
    assert by_email.json()["id"] == seed["hubspot"]["grace@example.com"]["contact_id"]
    r = hs.patch(f"/crm/v3/objects/contacts/{ada_id}", json={"properties": {"phone": "+44 20 7946 0000"}})
    assert r.status_code == 200 and r.json()["properties"]["phone"] == "+44 20 7946 0000"
    bad = hs.patch(f"/crm/v3/objects/contacts/{ada_id}", json={"properties": {"nope": "x"}})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in bad.json()["message"]
    missing = hs.get("/crm/v3/objects/contacts/999999")
    assert missing.status_code == 404 and missing.json()["message"] == "resource not found"


def test_create_contact_and_duplicate_conflict(hs, seed):
    r = hs.post("/crm/v3/objects/contacts", json={"properties": {"email": "linus@example.com",
                                                                 "firstname": "Linus", "lastname": "Torvalds"}})  # fmt: skip
    assert r.status_code == 201
    new_id = r.json()["id"]
    assert search_email(hs, "linus@example.com").json()["results"][0]["id"] == new_id
    dup = hs.post("/crm/v3/objects/contacts", json={"properties": {"email": "ADA@example.com"}})
    assert dup.status_code == 409
    ada_id = seed["hubspot"]["ada@example.com"]["contact_id"]
    assert dup.json()["message"] == f"Contact already exists. Existing ID: {ada_id}"
    assert dup.json()["category"] == "CONFLICT"


def test_create_note_associated_with_contact_and_list_notes(hs, seed):
    ada_id = seed["hubspot"]["ada@example.com"]["contact_id"]
    r = hs.post("/crm/v3/objects/notes", json={
        "properties": {"hs_timestamp": "2026-01-01T10:00:00Z", "hs_note_body": "Called about order #1001"},
        "associations": [{"to": {"id": ada_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                           "associationTypeId": 202}]}]})  # fmt: skip
    assert r.status_code == 201
    note_id = r.json()["id"]
    assert r.json()["properties"]["hs_note_body"] == "Called about order #1001"
    ids, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        body = hs.get(f"/crm/v4/objects/contacts/{ada_id}/associations/notes", params=params).json()
        ids += [str(x["toObjectId"]) for x in body["results"]]
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    assert ids == [*seed["hubspot"]["ada@example.com"]["notes"], note_id]
    contact = hs.get(f"/crm/v3/objects/contacts/{ada_id}", params={"associations": "notes"}).json()
    assert note_id in [x["id"] for x in contact["associations"]["notes"]["results"]]
    no_ts = hs.post("/crm/v3/objects/notes", json={"properties": {"hs_note_body": "x"}})
    assert no_ts.status_code == 400
    bad_link = hs.post("/crm/v3/objects/notes", json={
        "properties": {"hs_timestamp": "1767261600000"},
        "associations": [{"to": {"id": "999999"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                             "associationTypeId": 202}]}]})  # fmt: skip
    assert bad_link.status_code == 400


def test_search_notes_by_association_with_paging(hs, seed):
    ada_id = seed["hubspot"]["ada@example.com"]["contact_id"]
    query = {"filterGroups": [{"filters": [{"propertyName": "associations.contact", "operator": "EQ",
                                            "value": ada_id}]}], "limit": 3}  # fmt: skip
    first = hs.post("/crm/v3/objects/notes/search", json=query).json()
    assert first["total"] == 4 and len(first["results"]) == 3
    second = hs.post(
        "/crm/v3/objects/notes/search", json={**query, "after": first["paging"]["next"]["after"]}
    ).json()
    assert len(second["results"]) == 1 and "paging" not in second


def test_tickets_scope_and_list(hs):
    r = hs.get("/crm/v3/objects/tickets", params={"limit": 2})
    assert r.status_code == 200
    assert len(r.json()["results"]) == 2 and r.json()["paging"]["next"]["after"] == "2"
