"""Zendesk Support API v2 (docs/vendors.md §3): users, tickets, comments.

Auth: `Authorization: Bearer <OAuth token>` or Basic `{email}/token:{api_token}`. Lists support both
offset pagination (`page`, `per_page`, `next_page`) and cursor pagination (`page[size]`,
`page[after]`/`page[before]`, `meta.has_more`, `links.next`), as the real API does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.wire import (
    basic_credentials,
    bearer_token,
    decode_cursor,
    dumps,
    empty_response,
    encode_cursor,
    int_param,
    iso,
    json_response,
    read_json,
    url_with,
)

from .base import Ctx, FaultReply, Vendor, email_eq

if TYPE_CHECKING:
    from botctl.sandbox.oauth.routes import OAuthRoutes
    from botctl.sandbox.oauth.server import VendorAuthorizationServer

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


def _user(uid: int, name: str, email: str, role: str, ts: float) -> dict[str, Any]:
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


def _comment(
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


def _ticket(
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
_TOKEN_NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}


class Zendesk(Vendor):
    name = "zendesk"
    tenant_param = "subdomain"

    oauth_profile = OAUTH
    connect_config = {"subdomain": seed.TENANT}

    def static_credentials(self) -> list[StaticCredential]:
        return [
            StaticCredential(OAUTH_TOKEN, OAUTH_SCOPES, tenant=True),
            StaticCredential(OAUTH_TOKEN_LIMITED, OAUTH_LIMITED_SCOPES, tenant=True),
            StaticCredential(
                API_TOKEN, ("*",), tenant=True, subject={"kind": "api_token", "email": seed.ACCOUNT_EMAIL}
            ),
        ]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "oauth_access_token",
            "access_token": OAUTH_TOKEN,
            "scopes": list(OAUTH_SCOPES),
            "limited": {"access_token": OAUTH_TOKEN_LIMITED, "scopes": list(OAUTH_LIMITED_SCOPES)},
            "api_token": {
                "email": seed.ACCOUNT_EMAIL,
                "token": API_TOKEN,
                "basic_username": f"{seed.ACCOUNT_EMAIL}/token",
            },
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        return {
            "user_id": seed.zendesk_user_id(customer),
            "tickets": [seed.zendesk_ticket_id(customer, i) for i in seed.owned(customer)],
        }

    def seed_account(self) -> dict[str, Any]:
        return {"agent_id": seed.ZENDESK_AGENT_ID, "agent_email": seed.ACCOUNT_EMAIL}

    # -- OAuth: Zendesk numbers its tokens and manages them through its API ----------------------------

    def oauth_describe(self, root: str) -> dict[str, Any]:
        return {
            "token_info_url": root + "/api/v2/oauth/tokens/current.json",
            "token_delete_url": root + "/api/v2/oauth/tokens/{id}.json",
        }

    def oauth_token_subject(self, server: VendorAuthorizationServer, client: Any) -> dict[str, Any]:
        store = server.store
        subject = {"zendesk_token_id": store.next_token_id, "zendesk_client_id": client.spec.numeric_id}
        store.next_token_id += 1
        return subject

    def oauth_routes(self, routes: OAuthRoutes) -> list[Route]:
        async def current_token(ctx: Ctx) -> Response:
            """`GET|DELETE /api/v2/oauth/tokens/current.json`: the OAuth token making the request."""
            record = ctx.principal
            assert record is not None
            if record.subject.get("kind") == "api_token":
                return json_response(_TOKEN_NOT_FOUND, 404)
            store = ctx.state.oauth.stores[self.name]
            if "zendesk_token_id" not in record.subject:
                record.subject["zendesk_token_id"] = store.next_token_id
                store.next_token_id += 1
            if ctx.request.method == "DELETE":
                routes.revoke_record(ctx, record)
                return empty_response(204)
            base = str(ctx.request.base_url).rstrip("/") + self.prefix(ctx.tenant or "")
            tid = record.subject["zendesk_token_id"]
            return json_response(
                {
                    "token": {
                        "id": tid,
                        "url": f"{base}/api/v2/oauth/tokens/{tid}.json",
                        "user_id": seed.ZENDESK_AGENT_ID,
                        "client_id": record.subject.get("zendesk_client_id", 360000000),
                        "token": record.token[:10],
                        "refresh_token": None,
                        "created_at": iso(record.issued_at),
                        "expires_at": iso(record.expires_at) if record.expires_at else None,
                        "used_at": iso(ctx.now),
                        "scopes": sorted(record.scopes),
                    }
                }
            )

        async def delete_token(ctx: Ctx) -> Response:
            """`DELETE /api/v2/oauth/tokens/{id}.json`: revoke a token (and its refresh token)."""
            wanted = ctx.request.path_params["token_id"]
            found = ctx.state.tokens.find(self.name, lambda r: r.subject.get("zendesk_token_id") == wanted)
            if not found:
                return json_response(_TOKEN_NOT_FOUND, 404)
            for record in found:
                routes.revoke_record(ctx, record)
            return empty_response(204)

        return [
            Route("/api/v2/oauth/tokens/current.json", self.endpoint(current_token), methods=["GET", "DELETE"]),
            Route("/api/v2/oauth/tokens/{token_id:int}.json", self.endpoint(delete_token), methods=["DELETE"]),
        ]

    def new_store(self, state: SandboxState) -> ZendeskStore:
        store = ZendeskStore()
        t0 = state.anchor - 60 * DAY
        store.users[seed.ZENDESK_AGENT_ID] = _user(
            seed.ZENDESK_AGENT_ID, seed.ACCOUNT_NAME, seed.ACCOUNT_EMAIL, "admin", t0
        )
        for c in seed.CUSTOMERS:
            uid = seed.zendesk_user_id(c)
            store.users[uid] = _user(uid, c.name, c.email, "end-user", t0 + DAY)
        for n, (c, i) in enumerate(seed.sequence()):
            tid = seed.zendesk_ticket_id(c, i)
            ts = state.anchor - (20 - 2 * n) * DAY
            statuses = ADA_STATUSES if c is seed.ADA else GRACE_STATUSES
            subject = SUBJECTS[i % len(SUBJECTS)]
            body = f"Hello, this is {c.first_name}. {subject}"
            ticket = _ticket(
                tid, subject, body, seed.zendesk_user_id(c), statuses[i], PRIORITIES[(n + 2) % 4], ts
            )
            store.tickets[tid] = ticket
            _comment(store, tid, seed.zendesk_user_id(c), body, True, ts)
            if statuses[i] != "new":
                _comment(
                    store, tid, seed.ZENDESK_AGENT_ID, "Thanks, we are looking into it.", True, ts + 3600
                )
                ticket["assignee_id"] = seed.ZENDESK_AGENT_ID
                ticket["updated_at"] = iso(ts + 3600)
        return store

    # --- wire format -----------------------------------------------------------------------------

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # Headers per https://developer.zendesk.com/api-reference/introduction/rate-limits
        remaining = str(max(0, 700 - used))
        return {
            "X-Rate-Limit": "700",
            "X-Rate-Limit-Remaining": remaining,
            "ratelimit-limit": "700",
            "ratelimit-remaining": remaining,
            "ratelimit-reset": str(reset_in),
            "X-Zendesk-API-Version": "v2",
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        bodies = {
            429: {
                "error": "APIRateLimitExceeded",
                "description": "Number of allowed API requests per minute exceeded",
            },
            500: {"error": "InternalError", "description": "Something went wrong. Please try again."},
            502: {"error": "BadGateway", "description": "Bad Gateway"},
            503: {"error": "ServiceUnavailable", "description": "Service is temporarily unavailable."},
        }
        return FaultReply(status, {"content-type": "application/json; charset=utf-8"}, dumps(bodies[status]))

    def not_found(self, request: Request) -> Response:
        return json_response({"error": "InvalidEndpoint", "description": "Not found"}, 404)

    def tenant_not_found(self, request: Request, tenant: str) -> Response:
        return json_response(
            {
                "error": {
                    "title": f"No help desk at {tenant}.zendesk.com",
                    "message": "There is no help desk configured at this address. This means that the address is "
                    "available and that you can claim it at http://www.zendesk.com/signup",
                }
            },
            404,
        )

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        registry = ctx.state.tokens
        token = bearer_token(ctx.request)
        if token is not None:
            check = registry.check(self.name, token)
            if (
                check.ok
                and check.token
                and check.token.tenant == ctx.tenant
                and check.token.subject.get("kind") != "api_token"
            ):
                return check.token
            if check.status in ("expired", "revoked") or check.token is not None:
                return json_response(
                    {
                        "error": "invalid_token",
                        "error_description": "The access token provided is expired, revoked, malformed, or invalid "
                        "for other reasons.",
                    },
                    401,
                )
            return _couldnt_authenticate()
        basic = basic_credentials(ctx.request)
        if basic is not None:
            user, secret = basic
            if user.endswith("/token"):
                check = registry.check(self.name, secret)
                rec = check.token
                if (
                    check.ok
                    and rec
                    and rec.subject.get("kind") == "api_token"
                    and email_eq(rec.subject.get("email"), user[:-6])
                ):
                    return rec
        return _couldnt_authenticate()

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        access = scope.split(":")[1]
        if "*" in granted or access in granted or scope in granted:
            return None
        return json_response(
            {"error": "Forbidden", "description": f"You are missing the following required scopes: {access}"},
            403,
        )

    def build_routes(self) -> list[Route]:
        return [
            Route("/api/v2/users/me.json", self.endpoint(me, auth=False), methods=["GET"]),
            self.route("/api/v2/users/search.json", search_users, ["GET"], scope="users:read"),
            self.route("/api/v2/users/{user_id:int}.json", get_user, ["GET"], scope="users:read"),
            self.route(
                "/api/v2/users/{user_id:int}/tickets/requested.json",
                requested_tickets,
                ["GET"],
                scope="tickets:read",
            ),
            self.route("/api/v2/tickets.json", idempotent_create_ticket, ["POST"], scope="tickets:write"),
            self.route("/api/v2/tickets/{ticket_id:int}.json", get_ticket, ["GET"], scope="tickets:read"),
            self.route("/api/v2/tickets/{ticket_id:int}.json", update_ticket, ["PUT"], scope="tickets:write"),
            self.route(
                "/api/v2/tickets/{ticket_id:int}/comments.json", list_comments, ["GET"], scope="tickets:read"
            ),
        ]


VENDOR = Zendesk()


def _couldnt_authenticate() -> Response:
    return json_response({"error": "Couldn't authenticate you"}, 401)


def _base(ctx: Ctx) -> str:
    return str(ctx.request.base_url).rstrip("/") + f"/zendesk/{ctx.tenant}"


def _render_user(ctx: Ctx, user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "url": f"{_base(ctx)}/api/v2/users/{user['id']}.json", **user}


def _render_ticket(ctx: Ctx, ticket: dict[str, Any]) -> dict[str, Any]:
    return {"url": f"{_base(ctx)}/api/v2/tickets/{ticket['id']}.json", **ticket}


def _not_found() -> Response:
    return json_response({"error": "RecordNotFound", "description": "Not found"}, 404)


def _invalid(details: dict[str, list[dict[str, str]]]) -> Response:
    return json_response(
        {"error": "RecordInvalid", "description": "Record validation errors", "details": details}, 422
    )


def _agent(ctx: Ctx) -> dict[str, Any]:
    rec = ctx.principal
    if rec is not None and rec.subject.get("email"):
        user = ctx.store.user_by_email(rec.subject["email"])
        if user:
            return user
    return ctx.store.users[seed.ZENDESK_AGENT_ID]


def _list(ctx: Ctx, items: list[dict[str, Any]], key: str) -> Response:
    """Offset pagination by default; cursor pagination when page[size] (or page[after]) is given."""
    q = ctx.request.query_params
    try:
        size = int_param(q.get("page[size]"))
        per_page = int_param(q.get("per_page"))
        page = int_param(q.get("page"))
    except ValueError:
        return json_response(
            {"error": "InvalidPaginationParameter", "description": "page size must be an integer"}, 400
        )
    cursor_mode = size is not None or "page[after]" in q or "page[before]" in q
    if cursor_mode:
        if size is not None and not 1 <= size <= MAX_PAGE:
            return json_response(
                {
                    "error": "InvalidPaginationParameter",
                    "description": f"page[size] must be between 1 and {MAX_PAGE}",
                },
                400,
            )
        size = ctx.state.page_size(size, MAX_PAGE, MAX_PAGE)
        ids = [it["id"] for it in items]
        start = 0
        if q.get("page[after]"):
            pos = _cursor_pos(q["page[after]"], ids)
            if pos is None:
                return json_response(
                    {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}, 400
                )
            start = pos + 1
            chunk = items[start : start + size]
        elif q.get("page[before]"):
            pos = _cursor_pos(q["page[before]"], ids)
            if pos is None:
                return json_response(
                    {"error": "InvalidPaginationParameter", "description": "Invalid cursor"}, 400
                )
            start = max(0, pos - size)
            chunk = items[start:pos]
        else:
            chunk = items[:size]
        if chunk:
            first_idx = items.index(chunk[0])
            last_idx = items.index(chunk[-1])
            has_more = last_idx + 1 < len(items)
            after = encode_cursor({"o": "id", "v": chunk[-1]["id"]})
            before = encode_cursor({"o": "id", "v": chunk[0]["id"]})
        else:
            first_idx, has_more, after, before = 0, False, None, None
        links = {
            "prev": url_with(ctx.request, **{"page[before]": before, "page[after]": None})
            if before and first_idx > 0
            else None,
            "next": url_with(ctx.request, **{"page[after]": after, "page[before]": None}) if after else None,
        }
        return json_response(
            {
                key: chunk,
                "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
                "links": links,
            }
        )
    per_page = ctx.state.page_size(per_page, MAX_PAGE, MAX_PAGE)
    page = max(1, page or 1)
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    more = start + per_page < len(items)
    return json_response(
        {
            key: chunk,
            "next_page": url_with(ctx.request, page=page + 1, per_page=per_page) if more else None,
            "previous_page": url_with(ctx.request, page=page - 1, per_page=per_page) if page > 1 else None,
            "count": len(items),
        }
    )


def _cursor_pos(cursor: str, ids: list[int]) -> int | None:
    data = decode_cursor(cursor)
    if not data or data.get("v") not in ids:
        return None
    return ids.index(data["v"])


# --- handlers ------------------------------------------------------------------------------------


async def me(ctx: Ctx) -> Response:
    if "authorization" not in ctx.request.headers:
        return json_response({"user": ANONYMOUS_USER})
    result = VENDOR.authenticate(ctx)
    if isinstance(result, Response):
        return result
    ctx.principal = result
    return json_response({"user": _render_user(ctx, _agent(ctx))})


async def search_users(ctx: Ctx) -> Response:
    query = (ctx.request.query_params.get("query") or "").strip()
    external_id = ctx.request.query_params.get("external_id")
    users = list(ctx.store.users.values())
    if external_id is not None:
        users = [u for u in users if u["external_id"] == external_id]
    elif query:
        if query.lower().startswith("email:"):
            users = [u for u in users if email_eq(u["email"], query[6:].strip().strip('"'))]
        else:
            needle = query.strip('"').lower()
            users = [u for u in users if needle in u["email"].lower() or needle in u["name"].lower()]
    else:
        return json_response(
            {"error": "InvalidParameters", "description": "query or external_id is required"}, 400
        )
    return _list(ctx, [_render_user(ctx, u) for u in sorted(users, key=lambda u: u["id"])], "users")


async def get_user(ctx: Ctx) -> Response:
    user = ctx.store.users.get(ctx.request.path_params["user_id"])
    return json_response({"user": _render_user(ctx, user)}) if user else _not_found()


async def requested_tickets(ctx: Ctx) -> Response:
    uid = ctx.request.path_params["user_id"]
    if uid not in ctx.store.users:
        return _not_found()
    tickets = sorted(
        (t for t in ctx.store.tickets.values() if t["requester_id"] == uid), key=lambda t: t["id"]
    )
    return _list(ctx, [_render_ticket(ctx, t) for t in tickets], "tickets")


async def get_ticket(ctx: Ctx) -> Response:
    ticket = ctx.store.tickets.get(ctx.request.path_params["ticket_id"])
    return json_response({"ticket": _render_ticket(ctx, ticket)}) if ticket else _not_found()


async def list_comments(ctx: Ctx) -> Response:
    tid = ctx.request.path_params["ticket_id"]
    if tid not in ctx.store.tickets:
        return _not_found()
    return _list(ctx, list(ctx.store.comments.get(tid, [])), "comments")


def _validate_fields(t: dict[str, Any], *, creating: bool) -> dict[str, list[dict[str, str]]]:
    errors: dict[str, list[dict[str, str]]] = {}
    checks = (("priority", PRIORITIES), ("status", STATUSES[:-1] if creating else STATUSES), ("type", TYPES))
    for name, allowed in checks:
        if name in t and t[name] is not None and t[name] not in allowed:
            errors[name] = [
                {"description": f"{name.capitalize()}: {t[name]} is not valid", "error": "InvalidValue"}
            ]
    return errors


async def _ticket_body(ctx: Ctx) -> dict[str, Any] | Response:
    body, ok = await read_json(ctx.request)
    if not ok:
        return json_response(
            {"error": "Unprocessable Entity", "description": "Server could not parse JSON"}, 400
        )
    if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
        return json_response({"error": "InvalidParameter", "description": "ticket parameter is missing"}, 400)
    return body["ticket"]


async def create_ticket(ctx: Ctx) -> Response:
    t = await _ticket_body(ctx)
    if isinstance(t, Response):
        return t
    store: ZendeskStore = ctx.store
    comment = t.get("comment") if isinstance(t.get("comment"), dict) else {}
    text = comment.get("body") or ""
    html = comment.get("html_body")
    if not (text or html) and not t.get("description"):
        return _invalid(
            {"description": [{"description": "Description: cannot be blank", "error": "BlankValue"}]}
        )
    text = text or t.get("description") or ""
    errors = _validate_fields(t, creating=True)
    agent = _agent(ctx)
    requester: dict[str, Any] | None = agent
    if isinstance(t.get("requester"), dict):
        email = (t["requester"].get("email") or "").strip()
        if not email or "@" not in email:
            errors["requester"] = [
                {"description": "Requester: Email is not properly formatted", "error": "InvalidValue"}
            ]
        else:
            requester = store.user_by_email(email)
            if requester is None and not errors:
                uid = store.next_user_id
                store.next_user_id += 1
                name = t["requester"].get("name") or email.split("@")[0]
                requester = _user(uid, name, email, "end-user", ctx.now)
                store.users[uid] = requester
    elif t.get("requester_id") is not None:
        requester = store.users.get(t["requester_id"]) if isinstance(t["requester_id"], int) else None
        if requester is None:
            errors["requester"] = [{"description": "Requester: is invalid", "error": "InvalidValue"}]
    if errors:
        return _invalid(errors)
    assert requester is not None
    tid = store.next_ticket_id
    store.next_ticket_id += 1
    subject = t.get("subject") or text.splitlines()[0][:80]
    ticket = _ticket(
        tid, subject, text, requester["id"], t.get("status") or "new", t.get("priority"), ctx.now
    )
    ticket["via"]["channel"] = "api"
    ticket["submitter_id"] = agent["id"]
    ticket["type"] = t.get("type")
    ticket["tags"] = sorted({str(x) for x in t.get("tags") or []})
    if t.get("external_id") is not None:
        ticket["external_id"] = str(t["external_id"])
    if t.get("assignee_id") in store.users:
        ticket["assignee_id"] = t["assignee_id"]
    store.tickets[tid] = ticket
    public = comment.get("public", True) is not False
    c = _comment(
        store, tid, requester["id"] if requester is not agent else agent["id"], text, public, ctx.now, html
    )
    rendered = _render_ticket(ctx, ticket)
    audit = _audit(
        ctx,
        ticket,
        agent,
        [
            _comment_event(c),
            {"id": c["id"] + 1, "type": "Create", "field_name": "status", "value": ticket["status"]},
        ],
    )
    return json_response({"ticket": rendered, "audit": audit}, 201, {"Location": rendered["url"]})


async def idempotent_create_ticket(ctx: Ctx) -> Response:
    """`Idempotency-Key` on ticket create (developer.zendesk.com/api-reference/ticketing/introduction/
    #idempotency): the first request answers with `x-idempotency-lookup: miss`; the same key with
    the same body replays the saved answer with `x-idempotency-lookup: hit` (nothing is created);
    the same key with a different body is a 400. Keys expire after two hours. Only successful
    creates are saved, so a rejected request can be corrected and resent under the same key."""
    key = ctx.request.headers.get("idempotency-key")
    if not key:
        return await create_ticket(ctx)
    store: ZendeskStore = ctx.store
    for k in [k for k, v in store.idempotency.items() if ctx.now - v.created >= IDEMPOTENCY_TTL]:
        del store.idempotency[k]
    raw = await ctx.request.body()
    try:
        fingerprint = hashlib.sha256(json.dumps(json.loads(raw), sort_keys=True).encode()).hexdigest()
    except (ValueError, UnicodeDecodeError):
        fingerprint = hashlib.sha256(raw).hexdigest()
    saved = store.idempotency.get(key)
    if saved is not None:
        if saved.fingerprint != fingerprint:
            return json_response(
                {
                    "error": "IdempotentRequestError",
                    "description": "The request parameters don't match the original request for this idempotency key",
                },
                400,
                {"x-idempotency-lookup": "hit"},
            )
        return Response(
            saved.body,
            status_code=saved.status,
            headers={**saved.headers, "x-idempotency-lookup": "hit"},
            media_type="application/json; charset=utf-8",
        )
    response = await create_ticket(ctx)
    if 200 <= response.status_code < 300:
        keep = {k: v for k, v in response.headers.items() if k.lower() == "location"}
        store.idempotency[key] = SavedCreate(
            fingerprint, response.status_code, bytes(response.body), keep, ctx.now
        )
    response.headers["x-idempotency-lookup"] = "miss"
    return response


async def update_ticket(ctx: Ctx) -> Response:
    ticket = ctx.store.tickets.get(ctx.request.path_params["ticket_id"])
    if ticket is None:
        return _not_found()
    t = await _ticket_body(ctx)
    if isinstance(t, Response):
        return t
    if ticket["status"] == "closed":
        return _invalid(
            {"status": [{"description": "Status: closed prevents ticket update", "error": "InvalidValue"}]}
        )
    errors = _validate_fields(t, creating=False)
    if errors:
        return _invalid(errors)
    agent = _agent(ctx)
    events: list[dict[str, Any]] = []
    comment = t.get("comment") if isinstance(t.get("comment"), dict) else None
    if comment is not None:
        text = comment.get("body") or ""
        if not text and not comment.get("html_body"):
            return _invalid(
                {"comment": [{"description": "Comment: body cannot be blank", "error": "BlankValue"}]}
            )
        public = comment.get("public", True) is not False
        author = ctx.store.users.get(comment.get("author_id")) or agent
        c = _comment(ctx.store, ticket["id"], author["id"], text, public, ctx.now, comment.get("html_body"))
        events.append(_comment_event(c))
        if ticket["status"] == "new" and "status" not in t and author["role"] != "end-user":
            t = {**t, "status": "open"}
    for name in ("status", "priority", "subject", "type", "assignee_id"):
        if name in t and t[name] != ticket.get(name):
            events.append(
                {
                    "id": ctx.store.next_comment_id,
                    "type": "Change",
                    "field_name": name,
                    "value": t[name],
                    "previous_value": ticket.get(name),
                }
            )
            ctx.store.next_comment_id += 1
            ticket[name] = t[name]
    if "tags" in t and isinstance(t["tags"], list):
        ticket["tags"] = sorted({str(x) for x in t["tags"]})
    ticket["updated_at"] = iso(ctx.now)
    ticket["generated_timestamp"] = int(ctx.now)
    return json_response({"ticket": _render_ticket(ctx, ticket), "audit": _audit(ctx, ticket, agent, events)})


def _comment_event(c: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "type", "author_id", "body", "html_body", "plain_body", "public", "attachments", "audit_id")
    return {k: c[k] for k in keys}


def _audit(
    ctx: Ctx, ticket: dict[str, Any], author: dict[str, Any], events: list[dict[str, Any]]
) -> dict[str, Any]:
    audit_id = events[0].get("audit_id") if events and "audit_id" in events[0] else ctx.store.next_audit_id
    return {
        "id": audit_id,
        "ticket_id": ticket["id"],
        "created_at": iso(ctx.now),
        "author_id": author["id"],
        "metadata": {"system": {"client": "botctl-sandbox"}, "custom": {}},
        "events": events,
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
    }
