"""The Calendly vendor: its credentials, OAuth profile, seed plan, errors, authentication and routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, FaultReply, Vendor
from botctl.sandbox.wire import (
    bearer_token,
    dumps,
    json_response,
)

from .data import LIMITED_SCOPES, OAUTH, PAT, PAT_LIMITED, SCOPES, CalendlyStore, event_type_record
from .handlers import (
    available_times,
    cancel_event,
    cancellation_record,
    create_invitee,
    event_record,
    get_event,
    get_event_type,
    get_invitee,
    get_me,
    get_user,
    invitee_record,
    list_event_types,
    list_events,
    list_invitees,
    not_found_response,
)


class Calendly(Vendor):
    name = "calendly"

    oauth_profile = OAUTH

    def static_credentials(self) -> list[StaticCredential]:
        return [StaticCredential(PAT, SCOPES), StaticCredential(PAT_LIMITED, LIMITED_SCOPES)]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "personal_access_token",
            "access_token": PAT,
            "scopes": list(SCOPES),
            "limited": {"access_token": PAT_LIMITED, "scopes": list(LIMITED_SCOPES)},
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        owned = seed.owned(customer)
        return {
            "scheduled_events": [seed.calendly_event_uuid(customer, i) for i in owned],
            "invitees": [seed.calendly_invitee_uuid(customer, i) for i in owned],
        }

    def seed_account(self) -> dict[str, Any]:
        return {
            "user": seed.CALENDLY_USER,
            "organization": seed.CALENDLY_ORG,
            "event_types": list(seed.CALENDLY_EVENT_TYPES),
        }

    def oauth_token_extras(self, origin: str, now: float) -> dict[str, Any]:
        api = origin + self.prefix(seed.TENANT)
        return {
            "created_at": int(now),
            "owner": f"{api}/users/{seed.CALENDLY_USER}",
            "organization": f"{api}/organizations/{seed.CALENDLY_ORG}",
        }

    def new_store(self, state: SandboxState) -> CalendlyStore:
        store = CalendlyStore()
        t0 = state.anchor - 90 * DAY
        intro, support = seed.CALENDLY_EVENT_TYPES
        store.event_types[intro] = event_type_record(intro, "Intro call", "intro-call", 30, t0)
        store.event_types[support] = event_type_record(support, "Support session", "support-session", 60, t0)
        for n, (c, i) in enumerate(seed.sequence()):
            uuid = seed.calendly_event_uuid(c, i)
            # Ada: three upcoming active, one upcoming canceled, one past; Grace: two upcoming.
            if c is seed.ADA and i == 4:
                start = state.anchor - 3 * DAY + 10 * 3600
            else:
                start = state.anchor + (2 + n) * DAY + (9 + n % 4) * 3600
            et = store.event_types[intro if n % 2 == 0 else support]
            ev = event_record(uuid, et, start, start - 7 * DAY)
            store.events[uuid] = ev
            inv_uuid = seed.calendly_invitee_uuid(c, i)
            store.invitees[inv_uuid] = invitee_record(inv_uuid, uuid, c.email, c.name, start - 7 * DAY)
            if c is seed.ADA and i == 3:
                cancellation_record(store, ev, "Customer asked to cancel", "invitee", c.name, start - 2 * DAY)
        return store

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # https://developer.calendly.com/api-docs/overview/rate-limits
        return {
            "X-RateLimit-Limit": "500",
            "X-RateLimit-Remaining": str(max(0, 500 - used)),
            "X-RateLimit-Reset": str(reset_in),
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        bodies = {
            429: {
                "title": "Too Many Requests",
                "message": "You have exceeded the rate limit. Please try again later.",
            },
            500: {
                "title": "Internal Server Error",
                "message": "The server encountered an unexpected condition.",
            },
            502: {"title": "Bad Gateway", "message": "The server received an invalid response."},
            503: {"title": "Service Unavailable", "message": "The service is temporarily unavailable."},
        }
        return FaultReply(status, {"content-type": "application/json; charset=utf-8"}, dumps(bodies[status]))

    def not_found(self, request: Request) -> Response:
        return not_found_response()

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        token = bearer_token(ctx.request)
        check = ctx.state.tokens.check(self.name, token)
        if check.ok and check.token is not None:
            return check.token
        message = {
            "expired": "The access token expired",
            "revoked": "The access token is revoked",
        }.get(check.status, "The access token is invalid")
        return json_response({"title": "Unauthenticated", "message": message}, 401)

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        # A :write scope implies the matching :read (developer.calendly.com/docs/authentication/scopes).
        options = {scope, scope.replace(":read", ":write")}
        if scope == "availability:read":
            options |= {"event_types:read"}  # docs/vendors.md §1.1: the catalog lists it under event_types
        if "*" in granted or options & granted:
            return None
        return json_response(
            {
                "title": "Permission Denied",
                "message": f"This request requires the {scope} scope, which the access token does not have.",
            },
            403,
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/users/me", get_me, ["GET"], scope="users:read"),
            self.route("/users/{uuid}", get_user, ["GET"], scope="users:read"),
            self.route("/event_types", list_event_types, ["GET"], scope="event_types:read"),
            self.route("/event_types/{uuid}", get_event_type, ["GET"], scope="event_types:read"),
            self.route("/event_type_available_times", available_times, ["GET"], scope="availability:read"),
            self.route("/scheduled_events", list_events, ["GET"], scope="scheduled_events:read"),
            self.route("/scheduled_events/{uuid}", get_event, ["GET"], scope="scheduled_events:read"),
            self.route(
                "/scheduled_events/{uuid}/invitees", list_invitees, ["GET"], scope="scheduled_events:read"
            ),
            self.route(
                "/scheduled_events/{uuid}/invitees/{invitee}",
                get_invitee,
                ["GET"],
                scope="scheduled_events:read",
            ),
            self.route(
                "/scheduled_events/{uuid}/cancellation",
                cancel_event,
                ["POST"],
                scope="scheduled_events:write",
            ),
            self.route("/invitees", create_invitee, ["POST"], scope="scheduled_events:write"),
        ]


VENDOR = Calendly()
