"""Shopify (GraphQL Admin API) against the sandbox: email ownership, cursor pages, throttling."""

from __future__ import annotations

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import GRACE, LINUS


def order_ids(h, who="ada@example.com"):
    return [gid.rsplit("/", 1)[-1] for gid in h.seed["shopify"][who]["orders"]]


def test_validate(h):
    assert "acme.myshopify.com" in h.validate("shopify")
    with pytest.raises(ActionError) as e:
        h.validate("shopify", credential={"access_token": Secret("shpat_wrong")})
    assert e.value.code == "needs_reauth"


def test_list_my_orders(h):
    out = h.ok("shopify.list_my_orders")
    assert {o["id"] for o in out["orders"]} == set(order_ids(h))
    assert {o["name"] for o in out["orders"]} == set(h.seed["shopify"]["ada@example.com"]["order_names"])
    assert h.ok("shopify.list_my_orders", visitor=LINUS)["orders"] == []


def test_list_follows_cursor_pages(h):
    h.sb.configure(max_page_size=2)
    out = h.ok("shopify.list_my_orders")
    assert {o["id"] for o in out["orders"]} == set(order_ids(h))
    assert h.requests_to("shopify", "POST", "/graphql.json") == 3


def test_get_my_order(h):
    oid = order_ids(h)[0]
    out = h.ok("shopify.get_my_order", {"order_id": oid})
    assert out["id"] == oid and out["items"]
    gid = h.seed["shopify"]["ada@example.com"]["orders"][0]
    assert h.ok("shopify.get_my_order", {"order_id": gid})["id"] == oid


def test_someone_elses_order_is_forbidden(h):
    oid = order_ids(h, "grace@example.com")[0]
    err = h.fail("shopify.get_my_order", {"order_id": oid})
    assert err.code == "forbidden" and "grace" not in err.message.lower()
    assert h.ok("shopify.get_my_order", {"order_id": oid}, visitor=GRACE)["id"] == oid
    assert h.fail("shopify.get_my_order", {"order_id": "1"}).code == "not_found"


def test_throttled_query_is_retried_after_the_restore_time(h):
    h.sb.fault("shopify", "throttled", count=1)
    run = h.run("shopify.list_my_orders")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 1


def test_read_survives_two_500s_and_honours_429(h):
    h.sb.fault("shopify", "500", count=2)
    run = h.run("shopify.list_my_orders")
    assert run.error is None and len(run.waits) == 2
    h.sb.fault("shopify", "429", count=1, retry_after=2)
    run = h.run("shopify.list_my_orders")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 2
