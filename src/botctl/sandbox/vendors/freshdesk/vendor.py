"""The Freshdesk vendor: its API key, seed plan, errors, authentication, rate limits and routes."""

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
    basic_credentials,
    dumps,
    json_response,
)

from .data import API_KEY, SUBJECTS, FreshdeskStore, contact_record, ticket
from .handlers import (
    agents_me,
    conversation,
    create_ticket,
    get_contact,
    get_ticket,
    list_contacts,
    list_conversations,
    list_tickets,
    note,
    reply,
)


class Freshdesk(Vendor):
    name = "freshdesk"
    tenant_param = "domain"

    connect_config = {"domain": seed.TENANT}

    def static_credentials(self) -> list[StaticCredential]:
        return [StaticCredential(API_KEY, ("*",), tenant=True)]

    def describe_credentials(self) -> dict[str, Any]:
        return {"auth": "basic_key_x", "kind": "api_key", "api_key": API_KEY}

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        return {
            "contact_id": seed.freshdesk_contact_id(customer),
            "tickets": [seed.freshdesk_ticket_id(customer, i) for i in seed.owned(customer)],
        }

    def seed_account(self) -> dict[str, Any]:
        return {"agent_id": seed.FRESHDESK_AGENT_ID, "agent_email": seed.ACCOUNT_EMAIL}

    def new_store(self, state: SandboxState) -> FreshdeskStore:
        store = FreshdeskStore()
        t0 = state.anchor - 200 * DAY
        for c in seed.CUSTOMERS:
            cid = seed.freshdesk_contact_id(c)
            store.contacts[cid] = contact_record(cid, c.name, c.email, t0)
        for n, (c, i) in enumerate(seed.sequence()):
            tid = seed.freshdesk_ticket_id(c, i)
            # Within the last 30 days: GET /tickets only lists those unless updated_since is given.
            ts = state.anchor - (15 - 2 * n) * DAY + 9 * 3600
            status = (2, 3, 2, 4, 5)[i] if c is seed.ADA else (2, 3)[i]
            subject = SUBJECTS[i % len(SUBJECTS)]
            text = f"Hi, {c.first_name} here. {subject}."
            store.tickets[tid] = ticket(
                tid, subject, text, seed.freshdesk_contact_id(c), status, 1 + n % 4, 2, ts
            )
            if status != 2:
                conversation(
                    store,
                    tid,
                    seed.FRESHDESK_AGENT_ID,
                    "We are on it.",
                    private=False,
                    source=0,
                    ts=ts + 3600,
                )
        return store

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # docs/vendors.md §4.4; per account, shared by every key.
        return {
            "X-RateLimit-Total": "400",
            "X-RateLimit-Remaining": str(max(0, 400 - used)),
            "X-RateLimit-Used-CurrentRequest": "1",
            "X-Freshdesk-API-Version": "latest=v2; requested=v2",
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        bodies = {
            429: {
                "code": "rate_limit_exceeded",
                "message": "You have exceeded the limit of requests per minute",
            },
            500: {"code": "internal_error", "message": "We're sorry, but something went wrong."},
            502: {"code": "bad_gateway", "message": "Bad Gateway"},
            503: {"code": "service_unavailable", "message": "Service is temporarily unavailable"},
        }
        return FaultReply(status, {"content-type": "application/json; charset=utf-8"}, dumps(bodies[status]))

    def not_found(self, request: Request) -> Response:
        return json_response({"code": "invalid_url", "message": "The requested URL is not supported"}, 404)

    def tenant_not_found(self, request: Request, tenant: str) -> Response:
        return json_response({"code": "account_not_found", "message": "There is no helpdesk here!"}, 404)

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        basic = basic_credentials(ctx.request)
        if basic is not None:
            check = ctx.state.tokens.check(self.name, basic[0])
            if check.ok and check.token and check.token.tenant == ctx.tenant:
                return check.token
        return json_response(
            {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."},
            401,
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/api/v2/agents/me", agents_me, ["GET"]),
            self.route("/api/v2/contacts", list_contacts, ["GET"]),
            self.route("/api/v2/contacts/{contact_id:int}", get_contact, ["GET"]),
            self.route("/api/v2/tickets", list_tickets, ["GET"]),
            self.route("/api/v2/tickets", create_ticket, ["POST"]),
            self.route("/api/v2/tickets/{ticket_id:int}", get_ticket, ["GET"]),
            self.route("/api/v2/tickets/{ticket_id:int}/conversations", list_conversations, ["GET"]),
            self.route("/api/v2/tickets/{ticket_id:int}/reply", reply, ["POST"]),
            self.route("/api/v2/tickets/{ticket_id:int}/notes", note, ["POST"]),
        ]


VENDOR = Freshdesk()
