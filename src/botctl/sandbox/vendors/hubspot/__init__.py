"""HubSpot (docs/vendors.md §5): account info, token introspection, and CRM v3 objects (contacts,
notes, tickets) with search, associations and cursor paging (`after` -> `paging.next.after`).

Object ids are strings on the wire. Error bodies follow HS-SPEC `components.schemas.Error`.

Modules:
    data.py      HubSpot's seeded data: contacts, tickets, notes, associations and the store that holds
                 them
    vendor.py    The HubSpot vendor: its tokens, OAuth profile and hooks, seed plan, errors,
                 authentication, rate limits and routes
    handlers.py  HubSpot's endpoints: account info, token introspection, CRM v3 objects, search and
                 associations
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
