"""WooCommerce REST API v3 (docs/vendors.md §8): system status, customers, orders, order notes.

Auth: consumer key/secret as HTTP Basic, or as `consumer_key`/`consumer_secret` query params (the
real API accepts those over HTTPS; the sandbox is plain HTTP on loopback and accepts them too; it
does not implement OAuth 1.0a signatures). Lists: `page`/`per_page` (≤100) with `X-WP-Total`,
`X-WP-TotalPages` and a `Link` header (rel next/prev, as WordPress core emits).

Modules:
    data.py      WooCommerce's seeded data: customers, orders, notes and the store that holds them
    vendor.py    The WooCommerce vendor: its consumer keys, seed plan, errors, authentication and routes
    handlers.py  WooCommerce's endpoints: system status, customers, orders, order notes
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
