"""Stripe API v1 (docs/vendors.md §6): balance, account, customers (list + search), invoices,
subscriptions (list, get, update, cancel).

Like the real API: form-encoded request bodies with bracket notation, restricted keys with
per-resource permissions (403 naming the missing `rak_*` permission), `Idempotency-Key` replay,
`Request-Id` on every response, `Stripe-Should-Retry` on errors, and shapes that follow the
`Stripe-Version` header: before 2025-03-31 (basil) subscriptions carry top-level
`current_period_*` and invoices `subscription`/`paid`; from basil on those live on the items /
`parent.subscription_details`.

Modules:
    data.py      Stripe's seeded data: customers, invoices, subscriptions, charges, refunds and the store
                 that holds them
    vendor.py    The Stripe vendor: its keys and their permissions, seed plan, errors, authentication and
                 routes
    handlers.py  Stripe's endpoints: balance, account, customers (list and search), invoices,
                 subscriptions, refunds
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
