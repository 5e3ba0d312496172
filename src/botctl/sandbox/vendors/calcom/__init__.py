"""Cal.com API v2 (docs/vendors.md §2): me, event types, slots, bookings (list, get, create, cancel).

Endpoint versions follow the `cal-api-version` header. The real API silently falls back to an
older version when the header is missing; the sandbox refuses instead (400), so a client that
forgets the header is caught in tests rather than getting differently-shaped data in production.

Modules:
    data.py      Cal.com's seeded data: event types, bookings and the store that holds them
    vendor.py    The Cal.com vendor: its API key, seed plan, errors, authentication and routes
    handlers.py  Cal.com's endpoints: me, event types, slots, bookings (list, get, create, cancel), with
                 its versions and errors
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
