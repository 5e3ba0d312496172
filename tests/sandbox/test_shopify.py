"""Shopify Admin GraphQL (and the little REST it needs) in the sandbox."""

from __future__ import annotations

import httpx
import pytest

ORDERS_BY_EMAIL = """
query OrdersByEmail($query: String!, $after: String) {
  orders(first: 2, after: $after, query: $query, sortKey: CREATED_AT, reverse: true) {
    edges {
      cursor
      node {
        id
        name
        createdAt
        displayFinancialStatus
        displayFulfillmentStatus
        totalPriceSet { shopMoney { amount currencyCode } }
        fulfillments { trackingInfo { number url company } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.fixture
def gql(creds):
    c = creds["shopify"]
    with httpx.Client(
        base_url=c["base_url"], headers={"X-Shopify-Access-Token": c["access_token"]}
    ) as client:

        def run(query, variables=None, **kw):
            return client.post(c["graphql_path"], json={"query": query, "variables": variables or {}}, **kw)

        yield run


def test_shop_query_and_cost_extension(gql):
    r = gql("{ shop { name myshopifyDomain plan { displayName } } }")
    assert r.status_code == 200
    body = r.json()
    assert body["data"]["shop"] == {"name": "Acme", "myshopifyDomain": "acme.myshopify.com",
                                    "plan": {"displayName": "Basic"}}  # fmt: skip
    status = body["extensions"]["cost"]["throttleStatus"]
    assert set(status) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}
    assert r.headers["x-shopify-api-version"] == "2026-07"


def test_bad_token_and_unknown_shop(sandbox, creds):
    c = creds["shopify"]
    r = httpx.post(c["base_url"] + c["graphql_path"], json={"query": "{ shop { name } }"},
                   headers={"X-Shopify-Access-Token": "shpat_nope"})  # fmt: skip
    assert r.status_code == 401
    assert r.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }
    r = httpx.post(sandbox.url + "/shopify/nosuch" + c["graphql_path"], json={"query": "{ shop { name } }"},
                   headers={"X-Shopify-Access-Token": c["access_token"]})  # fmt: skip
    assert r.status_code == 404 and r.json() == {"errors": "Not Found"}


def test_access_scopes(creds):
    c = creds["shopify"]
    r = httpx.get(
        c["base_url"] + "/admin/oauth/access_scopes.json",
        headers={"X-Shopify-Access-Token": c["access_token"]},
    )
    assert {s["handle"] for s in r.json()["access_scopes"]} == set(c["scopes"])


def test_orders_by_customer_email_paginate(gql, seed):
    names, after = [], None
    while True:
        body = gql(ORDERS_BY_EMAIL, {"query": "email:ada@example.com", "after": after}).json()
        assert "errors" not in body, body
        conn = body["data"]["orders"]
        names += [e["node"]["name"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert names == list(reversed(seed["shopify"]["ada@example.com"]["order_names"]))
    grace = gql(ORDERS_BY_EMAIL, {"query": "email:grace@example.com"}).json()["data"]["orders"]["edges"]
    assert [e["node"]["id"] for e in grace] == list(reversed(seed["shopify"]["grace@example.com"]["orders"]))
    linus = gql(ORDERS_BY_EMAIL, {"query": "email:linus@example.com"}).json()["data"]["orders"]
    assert linus["edges"] == [] and linus["pageInfo"] == {"hasNextPage": False, "endCursor": None}


def test_order_by_id_with_fragments_aliases_and_tracking(gql, seed):
    oid = seed["shopify"]["ada@example.com"]["orders"][0]
    query = """
    query ($id: ID!) {
      o: order(id: $id) { ...Status customer { email numberOfOrders } __typename }
      missing: order(id: "gid://shopify/Order/1") { id }
    }
    fragment Status on Order {
      name cancelledAt closedAt displayFulfillmentStatus
      fulfillments { status trackingInfo { number company url } }
      lineItems(first: 5) { nodes { title quantity } }
    }
    """
    body = gql(query, {"id": oid}).json()
    assert "errors" not in body, body
    order = body["data"]["o"]
    assert order["name"] == "#1001" and order["__typename"] == "Order"
    assert order["customer"] == {"email": "ada@example.com", "numberOfOrders": "5"}
    assert order["fulfillments"][0]["trackingInfo"][0]["company"] == "UPS"
    assert order["lineItems"]["nodes"]
    assert body["data"]["missing"] is None


def test_customers_query_by_email(gql, seed):
    body = gql('{ customers(first: 1, query: "email:grace@example.com") { nodes { id email displayName '
               'orders(first: 5) { nodes { name } } } } }').json()  # fmt: skip
    nodes = body["data"]["customers"]["nodes"]
    assert nodes[0]["id"] == seed["shopify"]["grace@example.com"]["customer_id"]
    assert [o["name"] for o in nodes[0]["orders"]["nodes"]] == seed["shopify"]["grace@example.com"][
        "order_names"
    ]


def test_validation_errors_have_no_data(gql):
    body = gql("{ shop { name nope } }").json()
    assert "data" not in body
    assert body["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'Shop'"
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"
    body = gql("{ shop { name }").json()
    assert body["errors"][0]["message"] == "Unexpected end of document"
    body = gql("{ order { id } }").json()
    assert "missing required arguments: id" in body["errors"][0]["message"]
    body = gql("{ orders(first: 1) { edges } }").json()
    assert body["errors"][0]["message"].startswith("Field must have selections")
    body = gql("query ($q: String!) { orders(first: 1, query: $q) { nodes { id } } }").json()
    assert body["errors"][0]["message"] == "Variable $q of type String! was provided invalid value"


def test_connection_needs_first_or_last(gql):
    body = gql('{ orders(query: "email:ada@example.com") { nodes { id } } }').json()
    assert body["data"]["orders"] is None
    assert body["errors"][0]["message"] == "you must provide one of first or last"
    assert body["errors"][0]["path"] == ["orders"]


def test_missing_scope_is_access_denied(creds):
    c = creds["shopify"]
    r = httpx.post(c["base_url"] + c["graphql_path"], headers={"X-Shopify-Access-Token": c["limited"]["access_token"]},
                   json={"query": '{ customers(first: 1) { nodes { id } } orders(first: 1) { nodes { id } } }'})  # fmt: skip
    body = r.json()
    assert body["data"]["customers"] is None and body["data"]["orders"] is not None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_real_throttling_when_the_bucket_is_empty(sandbox, gql):
    sandbox.configure(shopify_max_available=10.0, shopify_restore_rate=0.0)
    body = gql(ORDERS_BY_EMAIL, {"query": "email:ada@example.com"}).json()
    assert "data" in body
    body = gql("{ orders(first: 50) { nodes { id customer { id } } } }").json()
    assert body["errors"][0]["message"] == "Throttled"
    assert (
        body["extensions"]["cost"]["requestedQueryCost"]
        > body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    )


def test_invalid_search_field_is_ignored_with_a_warning(gql):
    body = gql('{ orders(first: 10, query: "colour:blue") { nodes { id } } }').json()
    assert len(body["data"]["orders"]["nodes"]) == 7
    assert body["extensions"]["search"][0]["warnings"][0]["field"] == "colour"


def test_rest_shop_and_bad_api_version(creds):
    c = creds["shopify"]
    headers = {"X-Shopify-Access-Token": c["access_token"]}
    r = httpx.get(c["base_url"] + "/admin/api/2026-07/shop.json", headers=headers)
    assert r.json()["shop"]["myshopify_domain"] == "acme.myshopify.com"
    assert r.headers["x-shopify-shop-api-call-limit"] == "1/40"
    assert httpx.get(c["base_url"] + "/admin/api/2026-13/shop.json", headers=headers).status_code == 404
