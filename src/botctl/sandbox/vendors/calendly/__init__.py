"""Calendly API v2 (docs/vendors.md §1): users, event types, available times, scheduled events,
invitees, cancellation, and the Scheduling API's `POST /invitees`.

Resources are addressed by full URIs, as in the real API; here the URIs point at the sandbox
(`{sandbox}/calendly/...`). Query params that take a URI (`user=`, `event_type=`) are matched on the
trailing id, so a URI built for another host still works.

Modules:
    data.py      Calendly's seeded data: event types, scheduled events, invitees and the store that holds
                 them
    vendor.py    The Calendly vendor: its credentials, OAuth profile, seed plan, errors, authentication
                 and routes
    handlers.py  Calendly's endpoints: users, event types, available times, scheduled events, invitees,
                 cancellations
"""

from __future__ import annotations

from .vendor import VENDOR

__all__ = ["VENDOR"]
