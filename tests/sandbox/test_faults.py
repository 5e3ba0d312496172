"""Injected faults: rate limits, server errors, hangs, resets and malformed bodies, per vendor."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from botctl.sandbox.testing import running_sandbox

VENDORS = ("calendly", "calcom", "zendesk", "freshdesk", "hubspot", "stripe", "shopify", "woocommerce")


def probe(creds: dict[str, Any], vendor: str) -> dict[str, Any]:
    """An authenticated, side-effect-free request to the vendor's "who am I"-style endpoint."""
    c = creds[vendor]
    base = c["base_url"]
    if vendor == "calendly":
        return {
            "method": "GET",
            "url": base + "/users/me",
            "headers": {"Authorization": "Bearer " + c["access_token"]},
        }
    if vendor == "calcom":
        return {"method": "GET", "url": base + "/me", "headers": {"Authorization": "Bearer " + c["api_key"]}}
    if vendor == "zendesk":
        return {"method": "GET", "url": base + "/api/v2/users/me.json",
                "headers": {"Authorization": "Bearer " + c["access_token"]}}  # fmt: skip
    if vendor == "freshdesk":
        return {"method": "GET", "url": base + "/api/v2/agents/me", "auth": (c["api_key"], "X")}
    if vendor == "hubspot":
        return {"method": "GET", "url": base + "/account-info/v3/details",
                "headers": {"Authorization": "Bearer " + c["access_token"]}}  # fmt: skip
    if vendor == "stripe":
        return {
            "method": "GET",
            "url": base + "/v1/customers",
            "headers": {"Authorization": "Bearer " + c["api_key"]},
        }
    if vendor == "shopify":
        return {"method": "GET", "url": base + "/admin/oauth/access_scopes.json",
                "headers": {"X-Shopify-Access-Token": c["access_token"]}}  # fmt: skip
    return {"method": "GET", "url": base + "/wp-json/wc/v3/system_status",
            "auth": (c["consumer_key"], c["consumer_secret"])}  # fmt: skip


def rate_limit_marker(vendor: str, r: httpx.Response) -> bool:
    if vendor == "woocommerce":
        return "429" in r.text  # the host/WAF page: core WooCommerce has no rate limiting
    body = r.json()
    return {
        "calendly": lambda: body["title"] == "Too Many Requests",
        "calcom": lambda: body["error"]["code"] == "ThrottlerException" and body["status"] == "error",
        "zendesk": lambda: body["error"] == "APIRateLimitExceeded",
        "freshdesk": lambda: "code" in body and "message" in body,
        "hubspot": lambda: body["errorType"] == "RATE_LIMIT" and body["policyName"] == "SECONDLY",
        "stripe": lambda: (
            body["error"]["code"] == "rate_limit" and body["error"]["type"] == "invalid_request_error"
        ),
        "shopify": lambda: "Exceeded" in body["errors"],
    }[vendor]()


@pytest.mark.parametrize("vendor", VENDORS)
def test_429_carries_vendor_body_and_retry_after_then_recovers(sandbox, creds, http, vendor):
    sandbox.fault(vendor, "429", retry_after=7)
    r = http.request(**probe(creds, vendor))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert rate_limit_marker(vendor, r)
    assert http.request(**probe(creds, vendor)).status_code == 200


@pytest.mark.parametrize("vendor", VENDORS)
def test_429_without_retry_after_has_no_header(sandbox, creds, http, vendor):
    sandbox.fault(vendor, "429", retry_after=None)
    r = http.request(**probe(creds, vendor))
    assert r.status_code == 429
    assert "retry-after" not in r.headers


@pytest.mark.parametrize("status", ["500", "502", "503"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_server_errors_carry_the_vendor_error_body(sandbox, creds, http, vendor, status):
    sandbox.fault(vendor, status)
    r = http.request(**probe(creds, vendor))
    assert r.status_code == int(status)
    if vendor == "woocommerce" and status != "500":
        assert status in r.text
    else:
        assert isinstance(r.json(), dict)
    if vendor == "stripe":
        assert r.headers["stripe-should-retry"] == "true"
        assert r.json()["error"]["type"] == "api_error"
        assert r.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("vendor", VENDORS)
def test_hang_is_abandoned_by_a_client_with_a_short_timeout(sandbox, creds, vendor):
    sandbox.fault(vendor, "hang")
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        httpx.request(**probe(creds, vendor), timeout=0.3)
    assert time.monotonic() - started < 2
    # The next request is served normally.
    assert httpx.request(**probe(creds, vendor), timeout=5).status_code == 200


@pytest.mark.parametrize("vendor", VENDORS)
def test_reset_is_seen_as_a_connection_error(sandbox, creds, vendor):
    sandbox.fault(vendor, "reset")
    with pytest.raises(httpx.TransportError) as info:
        httpx.request(**probe(creds, vendor), timeout=5)
    assert not isinstance(info.value, httpx.TimeoutException)
    assert httpx.request(**probe(creds, vendor), timeout=5).status_code == 200


@pytest.mark.parametrize("vendor", VENDORS)
def test_malformed_json_is_a_200_with_a_truncated_body(sandbox, creds, http, vendor):
    sandbox.fault(vendor, "malformed_json")
    r = http.request(**probe(creds, vendor))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


def test_faulted_write_is_not_applied_and_the_retry_applies_once(sandbox, creds, seed, http):
    zd = creds["zendesk"]
    headers = {"Authorization": "Bearer " + zd["access_token"]}
    new_ticket = {
        "ticket": {
            "subject": "Help",
            "comment": {"body": "Please"},
            "requester": {"email": "grace@example.com"},
        }
    }
    tickets_url = f"{zd['base_url']}/api/v2/users/{seed['zendesk']['grace@example.com']['user_id']}/tickets/requested.json"
    before = http.get(tickets_url, headers=headers).json()["count"]
    for kind in ("503", "reset", "malformed_json"):
        sandbox.fault("zendesk", kind, method="POST")
        try:
            http.post(zd["base_url"] + "/api/v2/tickets.json", headers=headers, json=new_ticket)
        except httpx.TransportError:
            pass
        assert http.get(tickets_url, headers=headers).json()["count"] == before, kind
    assert (
        http.post(zd["base_url"] + "/api/v2/tickets.json", headers=headers, json=new_ticket).status_code
        == 201
    )
    assert http.get(tickets_url, headers=headers).json()["count"] == before + 1
    route = sandbox.stats()["vendors"]["zendesk"]["routes"]["POST /api/v2/tickets.json"]
    assert route["requests"] == 4
    assert route["faulted"] == 3
    assert [e["fault"] for e in sandbox.stats()["requests"] if e["method"] == "POST"] == [
        "503", "reset", "malformed_json", None,
    ]  # fmt: skip


def test_fault_matches_path_substring_and_method_and_counts_down(sandbox, creds, http):
    zd = creds["zendesk"]
    headers = {"Authorization": "Bearer " + zd["access_token"]}
    sandbox.fault("zendesk", "503", count=2, path="/tickets/101.json", method="GET")
    assert http.get(zd["base_url"] + "/api/v2/tickets/102.json", headers=headers).status_code == 200
    assert http.put(zd["base_url"] + "/api/v2/tickets/101.json", headers=headers,
                    json={"ticket": {"priority": "high"}}).status_code == 200  # fmt: skip
    codes = [
        http.get(zd["base_url"] + "/api/v2/tickets/101.json", headers=headers).status_code for _ in range(3)
    ]
    assert codes == [503, 503, 200]
    # Another vendor is never affected.
    sandbox.fault("zendesk", "503")
    assert http.request(**probe(creds, "freshdesk")).status_code == 200


def test_clearing_faults(sandbox, creds, http):
    sandbox.fault("stripe", "500", count=10)
    assert len(http.get(sandbox.url + "/_sandbox/faults").json()["faults"]) == 1
    sandbox.clear_faults()
    assert http.request(**probe(creds, "stripe")).status_code == 200


def test_shopify_throttled_graphql_fault(sandbox, creds, http):
    sh = creds["shopify"]
    sandbox.fault("shopify", "throttled")
    r = http.post(sh["base_url"] + sh["graphql_path"], headers={"X-Shopify-Access-Token": sh["access_token"]},
                  json={"query": "{ shop { name } }"})  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert body["errors"][0]["message"] == "Throttled"
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "throttleStatus" in body["extensions"]["cost"]


def test_shutdown_ends_hanging_requests_promptly():
    outcome: dict[str, Any] = {}
    with running_sandbox() as sb:
        creds = sb.credentials()
        sb.fault("zendesk", "hang", hang_seconds=60)

        def call() -> None:
            try:
                outcome["response"] = httpx.request(**probe(creds, "zendesk"), timeout=30)
            except httpx.TransportError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.3)
        started = time.monotonic()
    thread.join(10)
    assert not thread.is_alive()
    assert "error" in outcome
    assert time.monotonic() - started < 5
