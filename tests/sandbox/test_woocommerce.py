"""WooCommerce REST API v3 in the sandbox."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def wc(creds):
    c = creds["woocommerce"]
    with httpx.Client(base_url=c["base_url"], auth=(c["consumer_key"], c["consumer_secret"])) as client:
        yield client


def test_system_status(wc):
    r = wc.get("/wp-json/wc/v3/system_status")
    assert r.status_code == 200
    assert r.json()["environment"]["version"]


def test_query_param_credentials(creds):
    c = creds["woocommerce"]
    r = httpx.get(c["base_url"] + "/wp-json/wc/v3/system_status",
                  params={"consumer_key": c["consumer_key"], "consumer_secret": c["consumer_secret"]})  # fmt: skip
    assert r.status_code == 200


def test_auth_errors(creds):
    c = creds["woocommerce"]
    url = c["base_url"] + "/wp-json/wc/v3/orders"
    r = httpx.get(url)
    assert r.status_code == 401
    assert r.json() == {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
                        "data": {"status": 401}}  # fmt: skip
    r = httpx.get(url, auth=("ck_nope", c["consumer_secret"]))
    assert r.json()["code"] == "woocommerce_rest_authentication_error"
    assert r.json()["message"] == "Consumer key is invalid."
    r = httpx.get(url, auth=(c["consumer_key"], "cs_nope"))
    assert r.json()["message"] == "Consumer secret is invalid."


def test_read_only_key_cannot_write(creds, seed):
    c = creds["woocommerce"]
    ro = (c["read_only"]["consumer_key"], c["read_only"]["consumer_secret"])
    oid = seed["woocommerce"]["ada@example.com"]["orders"][0]
    assert httpx.get(f"{c['base_url']}/wp-json/wc/v3/orders/{oid}", auth=ro).status_code == 200
    r = httpx.post(f"{c['base_url']}/wp-json/wc/v3/orders/{oid}/notes", auth=ro, json={"note": "x"})
    assert r.status_code == 401
    assert r.json()["message"] == "The API key provided does not have write permissions."


def test_unknown_store_and_route(sandbox, creds, wc):
    c = creds["woocommerce"]
    r = httpx.get(
        sandbox.url + "/woocommerce/nosuch/wp-json/wc/v3/orders",
        auth=(c["consumer_key"], c["consumer_secret"]),
    )
    assert r.status_code == 404 and r.json()["code"] == "rest_no_route"
    assert wc.get("/wp-json/wc/v3/nope").json()["code"] == "rest_no_route"


def test_customer_by_email(wc, seed):
    r = wc.get("/wp-json/wc/v3/customers", params={"email": "grace@example.com"})
    assert [c["id"] for c in r.json()] == [seed["woocommerce"]["grace@example.com"]["customer_id"]]
    assert wc.get("/wp-json/wc/v3/customers", params={"email": "nobody@example.com"}).json() == []


def test_orders_by_customer_with_headers_and_link(wc, seed):
    ada = seed["woocommerce"]["ada@example.com"]
    r = wc.get("/wp-json/wc/v3/orders", params={"customer": ada["customer_id"], "per_page": 2})
    assert r.headers["x-wp-total"] == "5" and r.headers["x-wp-totalpages"] == "3"
    ids, url, params = [], "/wp-json/wc/v3/orders", {"customer": ada["customer_id"], "per_page": 2}
    while url:
        r = wc.get(url, params=params)
        ids += [o["id"] for o in r.json()]
        url, params = r.links.get("next", {}).get("url"), None
    assert ids == sorted(ada["orders"], reverse=True)
    assert r.links["prev"]
    linus = seed["woocommerce"]["linus@example.com"]["customer_id"]
    r = wc.get("/wp-json/wc/v3/orders", params={"customer": linus})
    assert r.json() == [] and r.headers["x-wp-total"] == "0"
    bad = wc.get("/wp-json/wc/v3/orders", params={"per_page": 101})
    assert bad.status_code == 400 and bad.json()["code"] == "rest_invalid_param"


def test_order_and_notes(wc, seed):
    oid = seed["woocommerce"]["grace@example.com"]["orders"][1]
    order = wc.get(f"/wp-json/wc/v3/orders/{oid}").json()
    assert order["id"] == oid and order["billing"]["email"] == "grace@example.com"
    assert order["customer_id"] == seed["woocommerce"]["grace@example.com"]["customer_id"]
    r = wc.post(
        f"/wp-json/wc/v3/orders/{oid}/notes",
        json={"note": "Customer asked about delivery", "customer_note": False},
    )
    assert r.status_code == 201
    assert r.json()["note"] == "Customer asked about delivery"
    notes = wc.get(f"/wp-json/wc/v3/orders/{oid}/notes").json()
    assert notes[0]["id"] == r.json()["id"]
    missing = wc.post(f"/wp-json/wc/v3/orders/{oid}/notes", json={})
    assert missing.status_code == 400 and missing.json()["code"] == "rest_missing_callback_param"
    r = wc.get("/wp-json/wc/v3/orders/999999")
    assert r.status_code == 404 and r.json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_cancel_order(wc, seed):
    oid = seed["woocommerce"]["ada@example.com"]["orders"][4]
    r = wc.put(f"/wp-json/wc/v3/orders/{oid}", json={"status": "cancelled"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert wc.get(f"/wp-json/wc/v3/orders/{oid}").json()["status"] == "cancelled"
