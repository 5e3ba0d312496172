"""Calendly's seeded data: event types, scheduled events, invitees and the store that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botctl.sandbox import seed
from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.wire import (
    iso,
)

SLOT_MINUTES = 30
MAX_COUNT = 100
# docs/vendors.md §1.3/§10.4: the current reference allows ranges up to 31 days (an older guide said 7).
MAX_AVAILABILITY_DAYS = 31


@dataclass
class CalendlyStore:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitees: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: int = 1


def event_type_record(uuid: str, name: str, slug: str, duration: int, ts: float) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "name": name,
        "active": True,
        "booking_method": "instant",
        "slug": slug,
        "duration": duration,
        "duration_options": None,
        "kind": "solo",
        "pooling_type": None,
        "type": "StandardEventType",
        "color": "#0069ff",
        "created_at": iso(ts, fraction=6),
        "updated_at": iso(ts, fraction=6),
        "internal_note": None,
        "description_plain": f"{name} with {seed.ACCOUNT_NAME}",
        "description_html": f"<p>{name} with {seed.ACCOUNT_NAME}</p>",
        "secret": False,
        "deleted_at": None,
        "admin_managed": False,
        "locale": "en",
        "position": 0,
        "custom_questions": [],
    }


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
SCOPES = (
    "users:read",
    "scheduled_events:read",
    "scheduled_events:write",
    "event_types:read",
    "availability:read",
    "organizations:read",
)
LIMITED_SCOPES = ("users:read", "scheduled_events:read")
PAT = "eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiSFMyNTYifQ.sandbox-calendly-pat-acme.c2FuZGJveA"
PAT_LIMITED = "eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiSFMyNTYifQ.sandbox-calendly-pat-readonly.c2FuZGJveA"

OAUTH = Profile(
    vendor="calendly",
    title="Calendly",
    authorize_path="/oauth/authorize",
    token_path="/oauth/token",
    revoke_path="/oauth/revoke",
    # "Web clients send client_id:client_secret as Basic auth; native clients send client_id in
    # the body"; revoke takes client_id/client_secret in the body.
    token_auth_methods=("client_secret_basic",),
    revocation_auth_methods=("client_secret_basic", "client_secret_post"),
    scopes=SCOPES,
    access_ttl=2 * 3600,
    refresh_ttl=None,  # "don't expire until they are used"
    confidential=ClientSpec(
        "sbx-calendly-web-6b1f2c9d4e7a",
        "sbx-calendly-secret-3f8e1d2c7b6a5940e1d2c3b4a5968778",
        "botctl (web)",
    ),
    public=ClientSpec("sbx-calendly-native-0d9c8b7a6f5e", None, "botctl (native)"),
    publishes_metadata=True,
)
