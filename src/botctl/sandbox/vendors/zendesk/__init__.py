"""Zendesk Support API v2 (docs/vendors.md §3): users, tickets, comments.

Auth: `Authorization: Bearer <OAuth token>` or Basic `{email}/token:{api_token}`. Lists support both
offset pagination (`page`, `per_page`, `next_page`) and cursor pagination (`page[size]`,
`page[after]`/`page[before]`, `meta.has_more`, `links.next`), as the real API does.

Modules:
    data.py      Zendesk's seeded data: users, tickets and comments of the seeded account, and the store
                 that holds them
    vendor.py    The Zendesk vendor: its credentials, OAuth profile hooks, seed plan, errors,
                 authentication and routes
    handlers.py  Zendesk's endpoints: users, tickets, comments, with its pagination, validation and
                 idempotency
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
