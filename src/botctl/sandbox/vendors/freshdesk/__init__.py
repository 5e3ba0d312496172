"""Freshdesk API v2 (docs/vendors.md §4): agents/me, contacts, tickets, replies and notes.

Auth is HTTP Basic with the API key as username and any password (conventionally `X`). Lists use
`page`/`per_page` (≤100) and a `Link: <…>; rel="next"` header when another page exists.

Modules:
    data.py      Freshdesk's seeded data: agents, contacts, tickets, conversations and the store that
                 holds them
    vendor.py    The Freshdesk vendor: its API key, seed plan, errors, authentication, rate limits and
                 routes
    handlers.py  Freshdesk's endpoints: agents/me, contacts, tickets, replies and notes
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
