"""WooCommerce against the sandbox: customer/billing ownership, X-WP-TotalPages, private notes."""

from __future__ import annotations

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import GRACE, LINUS


def order_ids(h, who="ada@example.com"):
    return h.seed["woocommerce"][who]["orders"]


def test_validate(h):
    assert "acme.example" in h.validate("woocommerce")
    bad = {"api_key": Secret("ck_wrongwrongwrongwrongwrong"), "api_secret": Secret("cs_wrongwrongwrongwrong")}
    with pytest.raises(ActionError) as e:
        h.validate("woocommerce", credential=bad)
    assert e.value.code == "needs_reauth"
    assert "wrongwrong" not in e.value.message


def test_list_my_orders(h):
    out = h.ok("woocommerce.list_my_orders")
    assert {o["id"] for o in out["orders"]} == set(order_ids(h))
    assert h.ok("woocommerce.list_my_orders", visitor=LINUS)["orders"] == []


def test_list_follows_pages(h):
    h.sb.configure(max_page_size=2)
    out = h.ok("woocommerce.list_my_orders")
    assert {o["id"] for o in out["orders"]} == set(order_ids(h))
    assert h.requests_to("woocommerce", "GET", "/wc/v3/orders") >= 3


def test_get_my_order_and_note(h):
    oid = order_ids(h)[0]
    out = h.ok("woocommerce.get_my_order", {"order_id": oid})
    assert out["id"] == oid and out["items"]
    note = h.ok("woocommerce.add_order_note", {"order_id": oid, "note": "Please gift-wrap"})
    assert note["order_id"] == oid and note["note_id"]


def test_someone_elses_order_is_forbidden(h):
    oid = order_ids(h, "grace@example.com")[0]
    assert h.fail("woocommerce.get_my_order", {"order_id": oid}).code == "forbidden"
    assert h.fail("woocommerce.add_order_note", {"order_id": oid, "note": "x"}).code == "forbidden"
    assert h.requests_to("woocommerce", "POST", "/notes") == 0
    assert h.ok("woocommerce.get_my_order", {"order_id": oid}, visitor=GRACE)["id"] == oid
    assert h.fail("woocommerce.get_my_order", {"order_id": 999999}).code == "not_found"


def test_read_only_keys_cannot_add_notes(h):
    ro = h.credential("woocommerce", limited=True)
    oid = order_ids(h)[0]
    assert h.ok("woocommerce.get_my_order", {"order_id": oid}, credential=ro)["id"] == oid
    assert (
        h.fail("woocommerce.add_order_note", {"order_id": oid, "note": "x"}, credential=ro).code
        == "missing_scope"
    )


def test_read_survives_two_500s_and_honours_429(h):
    h.sb.fault("woocommerce", "500", count=2)
    run = h.run("woocommerce.list_my_orders")
    assert run.error is None and len(run.waits) == 2
    h.sb.fault("woocommerce", "429", count=1, retry_after=2)
    run = h.run("woocommerce.list_my_orders")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 2
