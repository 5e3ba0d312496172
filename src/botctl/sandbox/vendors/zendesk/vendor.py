"""The Zendesk vendor: its credentials, OAuth profile hooks, seed plan, errors, authentication and routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, FaultReply, Vendor, email_eq
from botctl.sandbox.wire import (
    basic_credentials,
    bearer_token,
    dumps,
    empty_response,
    iso,
    json_response,
)

from .data import (
    ADA_STATUSES,
    API_TOKEN,
    GRACE_STATUSES,
    OAUTH,
    OAUTH_LIMITED_SCOPES,
    OAUTH_SCOPES,
    OAUTH_TOKEN,
    OAUTH_TOKEN_LIMITED,
    PRIORITIES,
    SUBJECTS,
    TOKEN_NOT_FOUND,
    ZendeskStore,
    comment_record,
    ticket_record,
    user_record,
)
from .handlers import (
    couldnt_authenticate,
    get_ticket,
    get_user,
    idempotent_create_ticket,
    list_comments,
    me,
    requested_tickets,
    search_users,
    update_ticket,
)

if TYPE_CHECKING:
    from botctl.sandbox.oauth.routes import OAuthRoutes
    from botctl.sandbox.oauth.server import VendorAuthorizationServer


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
                return json_response(TOKEN_NOT_FOUND, 404)
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
                return json_response(TOKEN_NOT_FOUND, 404)
            for record in found:
                routes.revoke_record(ctx, record)
            return empty_response(204)

        return [
            Route(
                "/api/v2/oauth/tokens/current.json", self.endpoint(current_token), methods=["GET", "DELETE"]
            ),
            Route(
                "/api/v2/oauth/tokens/{token_id:int}.json", self.endpoint(delete_token), methods=["DELETE"]
            ),
        ]

    def new_store(self, state: SandboxState) -> ZendeskStore:
        store = ZendeskStore()
        t0 = state.anchor - 60 * DAY
        store.users[seed.ZENDESK_AGENT_ID] = user_record(
            seed.ZENDESK_AGENT_ID, seed.ACCOUNT_NAME, seed.ACCOUNT_EMAIL, "admin", t0
        )
        for c in seed.CUSTOMERS:
            uid = seed.zendesk_user_id(c)
            store.users[uid] = user_record(uid, c.name, c.email, "end-user", t0 + DAY)
        for n, (c, i) in enumerate(seed.sequence()):
            tid = seed.zendesk_ticket_id(c, i)
            ts = state.anchor - (20 - 2 * n) * DAY
            statuses = ADA_STATUSES if c is seed.ADA else GRACE_STATUSES
            subject = SUBJECTS[i % len(SUBJECTS)]
            body = f"Hello, this is {c.first_name}. {subject}"
            ticket = ticket_record(
                tid, subject, body, seed.zendesk_user_id(c), statuses[i], PRIORITIES[(n + 2) % 4], ts
            )
            store.tickets[tid] = ticket
            comment_record(store, tid, seed.zendesk_user_id(c), body, True, ts)
            if statuses[i] != "new":
                comment_record(
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
            return couldnt_authenticate()
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
        return couldnt_authenticate()

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
