"""Stripe against the sandbox: customer-id ownership, starting_after pagination, Idempotency-Key."""

from __future__ import annotations

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import GRACE, LINUS


def seed_of(h, who="ada@example.com"):
    return h.seed["stripe"][who]


def test_validate(h):
    assert h.seed["_meta"]["accounts"]["stripe"]["account_id"] in h.validate("stripe")
    # A restricted key that may not read the account is still proven with a call it may make.
    assert "restricted key" in h.validate("stripe", credential=h.credential("stripe", limited=True))
    with pytest.raises(ActionError) as e:
        h.validate("stripe", credential={"api_key": Secret("rk_test_wrongwrongwrong")})
    assert e.value.code == "needs_reauth"
    assert "wrongwrongwrong" not in e.value.message


def test_list_my_invoices(h):
    out = h.ok("stripe.list_my_invoices")
    ids = {i["id"] for i in out["invoices"]}
    assert ids <= set(seed_of(h)["invoices"]) and len(ids) == 4  # the draft is not shown
    assert all(i["status"] != "draft" for i in out["invoices"])
    assert h.ok("stripe.list_my_invoices", visitor=LINUS)["invoices"] == []


def test_list_follows_starting_after(h):
    h.sb.configure(max_page_size=2)
    out = h.ok("stripe.list_my_invoices")
    assert len(out["invoices"]) == 4
    assert h.route_requests("stripe", "GET /v1/invoices") == 3


def test_list_my_subscriptions(h):
    out = h.ok("stripe.list_my_subscriptions")
    assert {s["id"] for s in out["subscriptions"]} == set(seed_of(h)["subscriptions"])
    assert all(s["current_period_end"] for s in out["subscriptions"])


def test_cancel_at_period_end_with_idempotency_key(h):
    sid = seed_of(h)["subscriptions"][0]
    h.sb.fault("stripe", "500", count=1, method="POST")
    wire = []
    run = h.run("stripe.cancel_my_subscription", {"subscription_id": sid}, wire=wire)
    assert run.error is None, run.error
    assert run.result["cancel_at_period_end"] is True and run.result["status"] == "active"
    keys = [hdrs.get("idempotency-key") for (m, p, hdrs) in wire if m == "POST"]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    again = h.ok("stripe.cancel_my_subscription", {"subscription_id": sid})
    assert again["cancel_at_period_end"] is True


def test_cancel_someone_elses_subscription_is_forbidden(h):
    sid = seed_of(h, "grace@example.com")["subscriptions"][0]
    err = h.fail("stripe.cancel_my_subscription", {"subscription_id": sid})
    assert err.code == "forbidden" and sid not in err.message
    assert h.route_requests("stripe", "POST /v1/subscriptions/{id}") == 0
    subs = h.ok("stripe.list_my_subscriptions", visitor=GRACE)["subscriptions"]
    assert subs[0]["cancel_at_period_end"] is False


def test_limited_key_cannot_cancel(h):
    sid = seed_of(h)["subscriptions"][0]
    err = h.fail(
        "stripe.cancel_my_subscription",
        {"subscription_id": sid},
        credential=h.credential("stripe", limited=True),
    )
    assert err.code == "missing_scope" and "rak_subscription_write" in err.message


def test_read_survives_two_500s_and_honours_429(h):
    h.sb.fault("stripe", "500", count=2)
    run = h.run("stripe.list_my_subscriptions")
    assert run.error is None and len(run.waits) == 2
    h.sb.fault("stripe", "429", count=1, retry_after=2)
    run = h.run("stripe.list_my_subscriptions")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 2
