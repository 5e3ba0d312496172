"""The Cal.com vendor: its API key, seed plan, errors, authentication and routes."""

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
)

from .data import API_KEY, CalcomStore, booking_record, event_type
from .handlers import (
    cancel_booking,
    create_booking,
    error_body,
    error_response,
    get_booking,
    get_event_type,
    get_me,
    get_slots,
    list_bookings,
    list_event_types,
)


class Calcom(Vendor):
    name = "calcom"

    api_path = "/v2"

    def static_credentials(self) -> list[StaticCredential]:
        return [StaticCredential(API_KEY, ("*",), subject={"kind": "api_key"})]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "api_key",
            "api_key": API_KEY,
            "api_versions": {
                "bookings": "2024-08-13",
                "bookings_cursor": "2026-05-01",
                "slots": "2024-09-04",
                "event_types": "2024-06-14",
            },
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        owned = seed.owned(customer)
        return {
            "bookings": [seed.calcom_booking_uid(customer, i) for i in owned],
            "booking_ids": [seed.calcom_booking_id(customer, i) for i in owned],
        }

    def seed_account(self) -> dict[str, Any]:
        return {"user_id": seed.CALCOM_USER_ID, "event_types": list(seed.CALCOM_EVENT_TYPES)}

    def new_store(self, state: SandboxState) -> CalcomStore:
        store = CalcomStore()
        first, second = seed.CALCOM_EVENT_TYPES
        store.event_types[first] = event_type(first, "Intro call", "intro-call", 30)
        store.event_types[second] = event_type(second, "Support session", "support-session", 60)
        for n, (c, i) in enumerate(seed.sequence()):
            et = store.event_types[first if n % 2 == 0 else second]
            # Ada: three upcoming, one cancelled, one past; Grace: two upcoming.
            if c is seed.ADA and i == 4:
                start = state.anchor - 4 * DAY + 11 * 3600
            else:
                start = state.anchor + (3 + n) * DAY + (10 + n % 5) * 3600
            uid = seed.calcom_booking_uid(c, i)
            b = booking_record(
                seed.calcom_booking_id(c, i), uid, et, start, c.name, c.email, start - 10 * DAY
            )
            if c is seed.ADA and i == 3:
                b.update(
                    status="cancelled", cancellationReason="Customer cancelled", cancelledByEmail=c.email
                )
            store.bookings[uid] = b
        return store

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # CALCOM throttler-guard.ts: default throttler, 120 per 60 s for API keys.
        return {
            "X-RateLimit-Limit-Default": "120",
            "X-RateLimit-Remaining-Default": str(max(0, 120 - used)),
            "X-RateLimit-Reset-Default": str(reset_in),
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        codes = {
            429: ("ThrottlerException", "Too many requests. Please try again later."),
            500: ("InternalServerErrorException", "Internal server error"),
            502: ("BadGatewayException", "Bad Gateway"),
            503: ("ServiceUnavailableException", "Service Unavailable"),
        }
        code, message = codes[status]
        return FaultReply(
            status,
            {"content-type": "application/json; charset=utf-8"},
            dumps(error_body(request_path, code, message)),
        )

    def not_found(self, request: Request) -> Response:
        path = self.vendor_path(request)
        return error_response(request, 404, "NotFoundException", f"Cannot {request.method} {path}")

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        token = bearer_token(ctx.request)
        if token is None:
            return error_response(
                ctx.request,
                401,
                "UnauthorizedException",
                "ApiAuthStrategy - Invalid Authentication method provided. Either pass an API key as 'Bearer' "
                "header or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers",
            )
        check = ctx.state.tokens.check(self.name, token)
        if check.ok and check.token is not None:
            return check.token
        if token.startswith("cal_"):
            message = "ApiAuthStrategy - api key - Invalid API Key"
        elif check.status == "expired":
            message = "ApiAuthStrategy - access token - Access token is expired"
        else:
            message = "ApiAuthStrategy - access token - Invalid access token"
        return error_response(ctx.request, 401, "UnauthorizedException", message)

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        write = scope.replace("_READ", "_WRITE")
        if "*" in granted or scope in granted or write in granted:
            return None
        return error_response(
            ctx.request, 403, "ForbiddenException", f"insufficient_scope: required scope {scope} not granted"
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/v2/me", get_me, ["GET"], scope="PROFILE_READ"),
            self.route("/v2/event-types", list_event_types, ["GET"], scope="EVENT_TYPE_READ"),
            self.route(
                "/v2/event-types/{event_type_id:int}", get_event_type, ["GET"], scope="EVENT_TYPE_READ"
            ),
            Route("/v2/slots", self.endpoint(get_slots, auth=False), methods=["GET"]),
            self.route("/v2/bookings", list_bookings, ["GET"], scope="BOOKING_READ"),
            self.route("/v2/bookings", create_booking, ["POST"], scope="BOOKING_WRITE"),
            self.route("/v2/bookings/{uid}", get_booking, ["GET"], scope="BOOKING_READ"),
            self.route("/v2/bookings/{uid}/cancel", cancel_booking, ["POST"], scope="BOOKING_WRITE"),
        ]


VENDOR = Calcom()
