"""Stripe API v1 in the sandbox."""

from __future__ import annotations

import uuid

import httpx
import pytest


@pytest.fixture
def st(creds):
    c = creds["stripe"]
    with httpx.Client(base_url=c["base_url"], headers={"Authorization": "Bearer " + c["api_key"]}) as client:
        yield client


def test_balance_and_account(st):
    r = st.get("/v1/balance")
    assert r.status_code == 200 and r.json()["object"] == "balance"
    assert r.headers["request-id"].startswith("req_")
    assert r.headers["stripe-version"] == "2025-03-31.basil"
    assert st.get("/v1/account").json()["id"] == "acct_1SandboxAcme0001"


def test_basic_auth_with_the_key_as_username(creds):
    c = creds["stripe"]
    assert httpx.get(c["base_url"] + "/v1/balance", auth=(c["api_key"], "")).status_code == 200


def test_auth_errors(creds):
    base = creds["stripe"]["base_url"]
    r = httpx.get(base + "/v1/balance")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "You did not provide an API key" in r.json()["error"]["message"]
    r = httpx.get(base + "/v1/balance", headers={"Authorization": "Bearer rk_test_nope1234"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid API Key provided: rk_test_****1234"


def test_restricted_key_without_permission_gets_403(creds):
    c = creds["stripe"]
    headers = {"Authorization": "Bearer " + c["limited"]["api_key"]}
    r = httpx.get(c["base_url"] + "/v1/balance", headers=headers)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert "does not have the required permissions" in err["message"]
    assert "'rak_balance_read'" in err["message"]
    assert httpx.get(c["base_url"] + "/v1/invoices", headers=headers).status_code == 403
    assert httpx.get(c["base_url"] + "/v1/customers", params={"limit": 1}, headers=headers).status_code == 200


def test_customers_by_email_and_search(st, seed):
    ada = seed["stripe"]["ada@example.com"]["customer_id"]
    body = st.get("/v1/customers", params={"email": "ada@example.com"}).json()
    assert body["object"] == "list" and [c["id"] for c in body["data"]] == [ada]
    assert st.get("/v1/customers", params={"email": "ADA@example.com"}).json()["data"] == []
    found = st.get("/v1/customers/search", params={"query": "email:'ada@example.com'"}).json()
    assert found["object"] == "search_result" and [c["id"] for c in found["data"]] == [ada]
    assert st.get("/v1/customers/search", params={"query": "nonsense"}).status_code == 400
    missing = st.get("/v1/customers/cus_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


def test_invoices_pagination_with_starting_after(st, seed):
    ada = seed["stripe"]["ada@example.com"]
    ids, params = [], {"customer": ada["customer_id"], "limit": 2}
    while True:
        body = st.get("/v1/invoices", params=params).json()
        ids += [i["id"] for i in body["data"]]
        if not body["has_more"]:
            break
        params["starting_after"] = body["data"][-1]["id"]
    assert sorted(ids) == sorted(ada["invoices"])
    assert len(ids) == 5
    assert st.get("/v1/invoices", params={"limit": 101}).status_code == 400


def test_subscriptions_default_excludes_canceled(st, seed):
    ada = seed["stripe"]["ada@example.com"]
    default = st.get("/v1/subscriptions", params={"customer": ada["customer_id"]}).json()["data"]
    everything = st.get("/v1/subscriptions", params={"customer": ada["customer_id"], "status": "all"}).json()[
        "data"
    ]
    assert len(default) == 2 and len(everything) == 3
    assert {s["status"] for s in everything} == {"active", "trialing", "canceled"}


def test_version_header_changes_shapes(st, seed):
    sid = seed["stripe"]["grace@example.com"]["subscriptions"][0]
    new = st.get(f"/v1/subscriptions/{sid}").json()
    assert "current_period_end" not in new and "current_period_end" in new["items"]["data"][0]
    old = st.get(f"/v1/subscriptions/{sid}", headers={"Stripe-Version": "2024-06-20"}).json()
    assert old["current_period_end"] == new["items"]["data"][0]["current_period_end"]
    assert st.get("/v1/balance", headers={"Stripe-Version": "yesterday"}).status_code == 400


def test_cancel_at_period_end_with_idempotent_replay(sandbox, st, seed):
    sid = seed["stripe"]["grace@example.com"]["subscriptions"][0]
    key = str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    first = st.post(f"/v1/subscriptions/{sid}", data={"cancel_at_period_end": "true"}, headers=headers)
    assert first.status_code == 200
    sub = first.json()
    assert (
        sub["cancel_at_period_end"] is True
        and sub["cancel_at"] == sub["items"]["data"][0]["current_period_end"]
    )
    replay = st.post(f"/v1/subscriptions/{sid}", data={"cancel_at_period_end": "true"}, headers=headers)
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["original-request"] == first.headers["request-id"]
    assert replay.json() == sub
    conflict = st.post(f"/v1/subscriptions/{sid}", data={"cancel_at_period_end": "false"}, headers=headers)
    assert conflict.status_code == 400
    assert conflict.json()["error"]["type"] == "idempotency_error"
    assert st.get(f"/v1/subscriptions/{sid}").json()["cancel_at_period_end"] is True


def test_faulted_write_then_retry_with_same_key_applies_once(sandbox, st, seed):
    sid = seed["stripe"]["grace@example.com"]["subscriptions"][0]
    headers = {"Idempotency-Key": "retry-me"}
    sandbox.fault("stripe", "reset", method="POST")
    with pytest.raises(httpx.TransportError):
        st.post(f"/v1/subscriptions/{sid}", data={"metadata[note]": "x"}, headers=headers)
    assert st.get(f"/v1/subscriptions/{sid}").json()["metadata"] == {}
    ok = st.post(f"/v1/subscriptions/{sid}", data={"metadata[note]": "x"}, headers=headers)
    assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers
    assert ok.json()["metadata"] == {"note": "x"}


def test_update_validation(st, seed):
    sid = seed["stripe"]["grace@example.com"]["subscriptions"][0]
    r = st.post(f"/v1/subscriptions/{sid}", data={"bogus": "1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_unknown"
    assert r.headers["stripe-should-retry"] == "false"
    canceled = seed["stripe"]["ada@example.com"]["subscriptions"][2]
    r = st.post(f"/v1/subscriptions/{canceled}", data={"cancel_at_period_end": "true"})
    assert r.status_code == 400
    assert st.post("/v1/subscriptions/sub_nope", data={}).status_code == 404
    assert (
        st.get("/v1/nope").json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nope)")
    )
