"""HubSpot's seeded data: contacts, tickets, notes, associations and the store that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.wire import (
    iso,
)

if TYPE_CHECKING:
    pass


TYPE_ALIASES = {
    "contacts": "contacts",
    "contact": "contacts",
    "0-1": "contacts",
    "notes": "notes",
    "note": "notes",
    "0-46": "notes",
    "tickets": "tickets",
    "ticket": "tickets",
    "0-5": "tickets",
}
SINGULAR = {"contacts": "contact", "notes": "note", "tickets": "ticket"}
READ_SCOPE = {
    "contacts": "crm.objects.contacts.read",
    "notes": "crm.objects.contacts.read",
    "tickets": "tickets",
}
WRITE_SCOPE = {
    "contacts": "crm.objects.contacts.write",
    "notes": "crm.objects.contacts.write",
    "tickets": "tickets",
}
DEFAULT_PROPERTIES = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "tickets": (
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
        "content",
    ),
}
WRITABLE = {
    "contacts": {
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "company",
        "website",
        "jobtitle",
        "lifecyclestage",
        "hs_lead_status",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "hubspot_owner_id",
        "hs_language",
        "message",
        "date_of_birth",
    },
    "notes": {"hs_note_body", "hs_timestamp", "hubspot_owner_id", "hs_attachment_ids"},
    "tickets": {
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "hs_ticket_category",
        "hubspot_owner_id",
        "source_type",
    },
}
# HUBSPOT_DEFINED association type ids (developers.hubspot.com associations v4 reference).
ASSOCIATION_TYPES = {
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("tickets", "contacts"): 16,
    ("contacts", "tickets"): 15,
    ("notes", "tickets"): 228,
    ("tickets", "notes"): 227,
}
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
MAX_SEARCH_LIMIT = 200
MAX_LIST_LIMIT = 100


@dataclass
class HubspotStore:
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {t: {} for t in SINGULAR})
    # (from_type, from_id, to_type, to_id, type_id)
    associations: set[tuple[str, str, str, str, int]] = field(default_factory=set)
    next_id: int = 1001

    def associate(self, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        self.associations.add((a_type, a_id, b_type, b_id, ASSOCIATION_TYPES[(a_type, b_type)]))
        self.associations.add((b_type, b_id, a_type, a_id, ASSOCIATION_TYPES[(b_type, a_type)]))

    def associated(self, a_type: str, a_id: str, b_type: str) -> list[tuple[str, int]]:
        found = sorted((x[3], x[4]) for x in self.associations if x[:3] == (a_type, a_id, b_type))
        return sorted(found, key=lambda p: int(p[0]) if p[0].isdigit() else 0)


def object_record(oid: str, props: dict[str, Any], ts: float) -> dict[str, Any]:
    stamp = iso(ts, fraction=3)
    return {
        "id": oid,
        "properties": {**props, "hs_object_id": oid},
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


def stamp_props(otype: str, obj: dict[str, Any], ts: float, *, created: bool) -> None:
    stamp = iso(ts, fraction=3)
    props = obj["properties"]
    if otype == "notes":
        if created:
            props["hs_createdate"] = stamp
        props["hs_lastmodifieddate"] = stamp
    elif otype == "contacts":
        if created:
            props["createdate"] = stamp
        props["lastmodifieddate"] = stamp
    else:
        if created:
            props["createdate"] = stamp
        props["hs_lastmodifieddate"] = stamp
    obj["updatedAt"] = stamp


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
TOKEN_SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "tickets")
TOKEN_LIMITED_SCOPES = ("oauth", "crm.objects.contacts.read")
TOKEN = "pat-na1-5d3c1e2f-0a4b-4c6d-8e9f-0123456789ab"
TOKEN_LIMITED = "pat-na1-0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"

OAUTH = Profile(
    vendor="hubspot",
    title="HubSpot",
    authorize_path="/oauth/authorize",
    token_path="/oauth/v3/token",
    token_aliases=("/oauth/v1/token",),
    revoke_path="/oauth/v3/token/revoke",
    token_auth_methods=("client_secret_post",),
    revocation_auth_methods=("client_secret_post",),
    scopes=(
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "tickets",
    ),
    access_ttl=30 * 60,
    refresh_ttl=None,
    confidential=ClientSpec(
        "5f0c7e2a-3b1d-4c8e-9a6f-0d2b4e6a8c1f", "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "botctl"
    ),
    token_type="bearer",
    access_token_prefix="COx",
    extra_paths={"refresh_tokens_v1": "/oauth/v1/refresh-tokens"},
    device_flow_default=True,
)
# HubSpot's token errors carry `status` / `message` / `correlationId` (the RFC 6749 fields are kept).
OAUTH_STATUS = {
    ("invalid_grant", "authorization_code"): ("BAD_AUTH_CODE", "missing or unknown auth code"),
    ("invalid_grant", "refresh_token"): ("BAD_REFRESH_TOKEN", "missing or unknown refresh token"),
    ("invalid_client", None): ("BAD_CLIENT_ID", "missing or unknown client id"),
}
