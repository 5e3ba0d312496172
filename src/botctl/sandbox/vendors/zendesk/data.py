"""Zendesk's seeded data: users, tickets and comments of the seeded account, and the store that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import email_eq
from botctl.sandbox.wire import (
    iso,
)

if TYPE_CHECKING:
    pass


PRIORITIES = ("urgent", "high", "normal", "low")
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
TYPES = ("problem", "incident", "question", "task")
MAX_PAGE = 100

SUBJECTS = (
    "Where is my order?",
    "Refund request for last invoice",
    "Cannot log in to my account",
    "Change of shipping address",
    "Question about my subscription",
)
ADA_STATUSES = ("open", "pending", "new", "solved", "closed")
GRACE_STATUSES = ("open", "new")


IDEMPOTENCY_TTL = 2 * 3600  # "Idempotency keys expire after two hours"


@dataclass
class SavedCreate:
    fingerprint: str
    status: int
    body: bytes
    headers: dict[str, str]
    created: float


@dataclass
class ZendeskStore:
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_user_id: int = 3001
    next_ticket_id: int = 200
    next_comment_id: int = 90001
    next_audit_id: int = 70001
    # Idempotency-Key -> the saved answer to the ticket create that first used it.
    idempotency: dict[str, SavedCreate] = field(default_factory=dict)

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if email_eq(u["email"], email)), None)


def user_record(uid: int, name: str, email: str, role: str, ts: float) -> dict[str, Any]:
    return {
        "id": uid,
        "name": name,
        "email": email,
        "created_at": iso(ts),
        "updated_at": iso(ts),
        "time_zone": "London",
        "iana_time_zone": "Europe/London",
        "phone": None,
        "shared_phone_number": None,
        "photo": None,
        "locale_id": 1,
        "locale": "en-US",
        "organization_id": None,
        "role": role,
        "verified": True,
        "external_id": None,
        "tags": [],
        "alias": "",
        "active": True,
        "shared": False,
        "shared_agent": False,
        "last_login_at": iso(ts) if role != "end-user" else None,
        "two_factor_auth_enabled": None,
        "signature": "" if role != "end-user" else None,
        "details": "",
        "notes": "",
        "role_type": None,
        "custom_role_id": None,
        "moderator": role != "end-user",
        "ticket_restriction": None if role != "end-user" else "requested",
        "only_private_comments": False,
        "restricted_agent": False,
        "suspended": False,
        "default_group_id": 360000000001 if role != "end-user" else None,
        "report_csv": role == "admin",
        "user_fields": {},
    }


ANONYMOUS_USER: dict[str, Any] = {
    # users/me.json "is allowed for anonymous users" (docs/vendors.md §3.2): a 200 with a null id.
    "id": None,
    "url": None,
    "name": "Anonymous user",
    "email": "invalid@example.com",
    "created_at": None,
    "updated_at": None,
    "time_zone": "Pacific Time (US & Canada)",
    "iana_time_zone": "America/Los_Angeles",
    "phone": None,
    "photo": None,
    "locale_id": 1,
    "locale": "en-US",
    "organization_id": None,
    "role": "end-user",
    "verified": False,
    "authenticity_token": "sandbox",
}


def comment_record(
    store: ZendeskStore,
    ticket_id: int,
    author_id: int,
    body: str,
    public: bool,
    ts: float,
    html: str | None = None,
) -> dict[str, Any]:
    cid = store.next_comment_id
    store.next_comment_id += 1
    html_body = html if html is not None else "".join(f"<p>{line}</p>" for line in body.splitlines() or [""])
    comment = {
        "id": cid,
        "type": "Comment",
        "author_id": author_id,
        "body": body,
        "html_body": f'<div class="zd-comment" dir="auto">{html_body}</div>',
        "plain_body": body,
        "public": public,
        "attachments": [],
        "audit_id": store.next_audit_id,
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso(ts),
        "metadata": {"system": {"client": "botctl-sandbox"}, "custom": {}},
    }
    store.next_audit_id += 1
    store.comments.setdefault(ticket_id, []).append(comment)
    return comment


def ticket_record(
    tid: int, subject: str, description: str, requester_id: int, status: str, priority: str | None, ts: float
) -> dict[str, Any]:
    return {
        "id": tid,
        "external_id": None,
        "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso(ts),
        "updated_at": iso(ts),
        "generated_timestamp": int(ts),
        "type": None,
        "subject": subject,
        "raw_subject": subject,
        "description": description,
        "priority": priority,
        "status": status,
        "recipient": None,
        "requester_id": requester_id,
        "submitter_id": requester_id,
        "assignee_id": None,
        "organization_id": None,
        "group_id": 360000000001,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "forum_topic_id": None,
        "problem_id": None,
        "has_incidents": False,
        "is_public": True,
        "due_at": None,
        "tags": [],
        "custom_fields": [],
        "satisfaction_rating": None,
        "sharing_agreement_ids": [],
        "custom_status_id": 1,
        "fields": [],
        "followup_ids": [],
        "ticket_form_id": 360000000010,
        "brand_id": 360000000020,
        "allow_channelback": False,
        "allow_attachments": True,
        "from_messaging_channel": False,
    }


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
OAUTH_SCOPES = ("read", "write")
OAUTH_LIMITED_SCOPES = ("read",)
OAUTH_TOKEN = "zd-sandbox-oauth-9f1c2b3a4d5e6f708192a3b4c5d6e7f8"
OAUTH_TOKEN_LIMITED = "zd-sandbox-oauth-readonly-0a1b2c3d4e5f60718293a4b5"
API_TOKEN = "zdApiTokenSandboxAcme0123456789abcdef0123"

OAUTH = Profile(
    vendor="zendesk",
    title="Zendesk",
    authorize_path="/oauth/authorizations/new",
    token_path="/oauth/tokens",
    revoke_path="/oauth/revoke",
    revoke_is_extension=True,
    token_auth_methods=("client_secret_post",),
    revocation_auth_methods=("client_secret_post",),
    scopes=(
        "read",
        "write",
        "impersonate",
        "tickets:read",
        "tickets:write",
        "users:read",
        "users:write",
        "organizations:read",
        "organizations:write",
    ),
    access_ttl=30 * 60,
    refresh_ttl=30 * DAY,
    confidential=ClientSpec(
        "botctl_sandbox",
        "5c1b0e8f2d4a6c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e",
        "botctl",
        numeric_id=360000001,
    ),
    public=ClientSpec("botctl_sandbox_native", None, "botctl (native)", numeric_id=360000002),
    token_type="bearer",
    refresh_revokes_previous_access=True,
    json_token_body=True,
    access_token_hex_bytes=32,
    device_flow_default=True,
    # "expires_in" 5 min..48 h and "refresh_token_expires_in" 7..90 days in the token request.
    requested_lifetimes=((300, 172800), (7 * DAY, 90 * DAY)),
    refresh_expiry_in_response=True,
)
TOKEN_NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
