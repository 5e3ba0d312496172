"""Shopify Admin API (docs/vendors.md §7): GraphQL `POST /admin/api/{version}/graphql.json` over a
subset of the Admin schema (shop, orders, order, customers, customer, node/nodes), plus REST
`GET /admin/oauth/access_scopes.json` and `GET /admin/api/{version}/shop.json`.

Queries are parsed and validated for real (see `botctl.sandbox.graphql`), so any query a client
sends is answered only from fields this subset has; anything else is a GraphQL validation error,
as Shopify would report it. Every response carries `extensions.cost` with a leaky-bucket
`throttleStatus`; a query costing more than is available gets the "Throttled" error. Costs follow
Shopify's rules roughly (object 1, connection 2 + n × node cost).

Modules:
    data.py      Shopify's seeded data: customers, orders, line items, fulfillments and the store that
                 holds them
    vendor.py    The Shopify vendor: its tokens, OAuth profile and hooks, seed plan, errors,
                 authentication and routes
    handlers.py  Shopify's endpoints: the REST ones (access scopes, shop) and the GraphQL endpoint with
                 its cost-based throttling
    resolvers.py The resolvers of Shopify's Admin GraphQL subset: orders, customers, nodes, shop, with
                 Shopify's search syntax, sorts and connections
    schema.py    The Admin GraphQL schema subset the sandbox serves (types, fields, arguments), bound to
                 the resolvers
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
