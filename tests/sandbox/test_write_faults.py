"""Writes whose answer is lost (`write_then_reset`, `write_then_hang`, `rotate_then_fail`) and Zendesk's
Idempotency-Key,
which together let a client prove a retried write is not applied twice."""

from __future__ import annotations

import httpx
import pytest

TICKET = {"ticket": {"subject": "Parcel lost", "comment": {"body": "Where is order #1002?"}}}


@pytest.fixture
def zd(sandbox, creds, plain_http):
    base = creds["zendesk"]["base_url"]
    headers = {"Authorization": "Bearer " + creds["zendesk"]["access_token"]}

    def post(body=TICKET, key=None):
        h = dict(headers)
        if key:
            h["Idempotency-Key"] = key
        return plain_http.post(base + "/api/v2/tickets.json", json=body, headers=h)

    return post


def ticket_count(sandbox) -> int:
    return len(sandbox.state.stores["zendesk"].tickets)


def test_zendesk_idempotency_key_replays_and_rejects_a_different_body(sandbox, zd):
    before = ticket_count(sandbox)
    first = zd(key="k-1")
    assert first.status_code == 201 and first.headers["x-idempotency-lookup"] == "miss"
    replay = zd(key="k-1")
    assert replay.status_code == 201 and replay.headers["x-idempotency-lookup"] == "hit"
    assert replay.json() == first.json() and replay.headers["location"] == first.headers["location"]
    assert ticket_count(sandbox) == before + 1
    other_body = {"ticket": {**TICKET["ticket"], "subject": "Something else"}}
    conflict = zd(other_body, key="k-1")
    assert conflict.status_code == 400 and conflict.json()["error"] == "IdempotentRequestError"
    assert zd(key="k-2").json()["ticket"]["id"] != first.json()["ticket"]["id"]
    plain = zd()
    assert plain.status_code == 201 and "x-idempotency-lookup" not in plain.headers
    assert ticket_count(sandbox) == before + 3


def test_zendesk_failed_create_is_not_saved_under_its_key(sandbox, zd):
    bad = zd({"ticket": {"subject": "no body"}}, key="k-fix")
    assert bad.status_code == 422
    assert zd(key="k-fix").status_code == 201  # corrected and resent under the same key


def test_zendesk_idempotency_keys_expire_after_two_hours(sandbox, zd):
    first = zd(key="k-old")
    sandbox.state.stores["zendesk"].idempotency["k-old"].created -= 2 * 3600
    again = zd(key="k-old")
    assert again.headers["x-idempotency-lookup"] == "miss"
    assert again.json()["ticket"]["id"] != first.json()["ticket"]["id"]


def test_write_then_reset_with_idempotency_key_is_applied_once(sandbox, zd):
    before = ticket_count(sandbox)
    sandbox.fault("zendesk", "write_then_reset", path="/api/v2/tickets.json", method="POST")
    with pytest.raises(httpx.TransportError):
        zd(key="retry-1")
    assert ticket_count(sandbox) == before + 1  # applied, though the client never heard back
    retry = zd(key="retry-1")
    assert retry.status_code == 201 and retry.headers["x-idempotency-lookup"] == "hit"
    assert ticket_count(sandbox) == before + 1
    log = sandbox.stats()["requests"]
    assert [e["fault"] for e in log[-2:]] == ["write_then_reset", None]
    assert log[-2]["status"] is None


def test_write_then_reset_without_a_key_duplicates(sandbox, zd):
    before = ticket_count(sandbox)
    sandbox.fault("zendesk", "write_then_reset", method="POST")
    with pytest.raises(httpx.TransportError):
        zd()
    assert zd().status_code == 201
    assert ticket_count(sandbox) == before + 2  # what an idempotency key is for


def test_write_then_hang_applies_then_holds_the_connection_until_dropped(sandbox, zd, plain_http):
    """Applied at once; the caller hears nothing while it holds (the moment a test kills the caller), then
    the connection is dropped."""
    import concurrent.futures
    import time

    before = ticket_count(sandbox)
    sandbox.fault("zendesk", "write_then_hang", path="/tickets.json", method="POST", hang_seconds=2)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(zd, key="held-1")
        deadline = time.monotonic() + 10
        while ticket_count(sandbox) == before:
            assert time.monotonic() < deadline, "the held write was not applied"
            time.sleep(0.02)
        assert not fut.done()  # applied, and still no answer
        with pytest.raises(httpx.TransportError):
            fut.result(timeout=10)
    assert time.monotonic() - started >= 1.5
    assert ticket_count(sandbox) == before + 1
    assert [e["fault"] for e in sandbox.stats()["requests"][-1:]] == ["write_then_hang"]


def test_stripe_write_then_reset_replays(sandbox, seed, creds, plain_http):
    sid = seed["stripe"]["grace@example.com"]["subscriptions"][0]
    url = creds["stripe"]["base_url"] + f"/v1/subscriptions/{sid}"
    headers = {"Authorization": "Bearer " + creds["stripe"]["api_key"], "Idempotency-Key": "lost-1"}
    sandbox.fault("stripe", "write_then_reset", method="POST")
    with pytest.raises(httpx.TransportError):
        plain_http.post(url, data={"metadata[note]": "x"}, headers=headers)
    again = plain_http.post(url, data={"metadata[note]": "x"}, headers=headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["metadata"] == {"note": "x"}


def test_rotate_then_fail_on_a_write_applies_it_and_answers_500(sandbox, zd):
    before = ticket_count(sandbox)
    sandbox.fault("zendesk", "rotate_then_fail", method="POST")
    r = zd(key="k-500")
    assert r.status_code == 500 and r.json()["error"] == "InternalError"
    assert ticket_count(sandbox) == before + 1
    assert zd(key="k-500").headers["x-idempotency-lookup"] == "hit"


def test_write_then_delay_applies_the_write_at_once_and_answers_it_late(sandbox, zd):
    import time

    before = ticket_count(sandbox)
    sandbox.fault("zendesk", "write_then_delay", method="POST", hang_seconds=0.5)
    sent = time.monotonic()
    r = zd()
    assert r.status_code == 201 and r.json()["ticket"]["subject"] == "Parcel lost"
    assert time.monotonic() - sent >= 0.5
    assert ticket_count(sandbox) == before + 1
    assert sandbox.stats()["requests"][-1]["fault"] == "write_then_delay"


def test_fault_kinds_are_listed_and_validated(sandbox, plain_http):
    for kind in ("rotate_then_fail", "write_then_reset", "write_then_hang", "write_then_delay"):
        assert sandbox.fault("calendly", kind, path="/oauth/token")["kind"] == kind
    r = plain_http.post(sandbox.url + "/_sandbox/faults", json={"vendor": "calendly", "kind": "explode"})
    assert r.status_code == 400 and "write_then_reset" in r.json()["error"]
