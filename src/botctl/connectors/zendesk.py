"""Zendesk Support (https://{subdomain}.zendesk.com/api/v2): OAuth bearer tokens of an agent.

The visitor is the Zendesk end user whose primary email is the token's email; a ticket is the
visitor's when its `requester_id` is that user's id. Lists use cursor pagination
(`page[size]`/`page[after]`, `meta.has_more`). Ticket creation sends an `Idempotency-Key`
(Zendesk honours it on POST /tickets), which also lets the transport retry it safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import (
    MAX_PAGES,
    body,
    display_name,
    forbidden,
    object_schema,
    pick,
    same_email,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, ConfigField, Connector, VendorOAuth

if TYPE_CHECKING:
    import httpx

VENDOR = "Zendesk"
_TICKET_ID = {"type": "integer", "minimum": 1}
_TICKET_FIELDS = ("id", "subject", "status", "priority", "created_at", "updated_at")


def _broader_scopes(needed: str) -> tuple[str, ...]:
    """OAuth `read` / `write` cover every `<resource>:read` / `<resource>:write`."""
    return (needed.split(":", 1)[1],) if ":" in needed else ()


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    user = body(await client.get("/api/v2/users/me.json"), VENDOR).get("user") or {}
    # users/me answers anonymous callers too, with id null: a 200 alone proves nothing.
    if not user.get("id"):
        raise ActionError("needs_reauth", "Zendesk did not recognise the token (anonymous user).")
    if user.get("role") not in ("agent", "admin"):
        raise ActionError("missing_scope", "The Zendesk token belongs to an end user; connect as an agent.")
    return f"{user.get('name')} ({user.get('email')}) on {config.get('subdomain', 'zendesk')}"


async def revoke(client: httpx.AsyncClient, config: Mapping[str, str]) -> None:
    # DELETE /oauth/tokens/current.json was reported to answer 204 yet leave the token working;
    # revoking by id is the reliable form.
    token = body(await client.get("/api/v2/oauth/tokens/current.json"), VENDOR).get("token") or {}
    if token.get("id"):
        await client.delete(f"/api/v2/oauth/tokens/{token['id']}.json")


async def _find_user_id(ctx: ActionContext) -> int | None:
    email = visitor_email(ctx)
    data = body(await ctx.client.get("/api/v2/users/search.json", params={"query": f"email:{email}"}), VENDOR)
    for user in data.get("users") or []:
        # Search also matches secondary identities and partial terms: only the primary email counts.
        if same_email(user.get("email"), email) and user.get("id"):
            return int(user["id"])
    return None


async def _my_ticket(ctx: ActionContext, ticket_id: int) -> tuple[dict[str, Any], int]:
    """The ticket if the visitor requested it, else forbidden. Nothing of a foreign ticket leaks."""
    user_id = await _find_user_id(ctx)
    try:
        ticket = body(await ctx.client.get(f"/api/v2/tickets/{ticket_id}.json"), VENDOR).get("ticket") or {}
    except ActionError as e:
        if e.code == "not_found":
            raise ActionError("not_found", "No such ticket.", upstream_status=404) from None
        raise
    if user_id is None or ticket.get("requester_id") != user_id:
        raise forbidden("ticket")
    touched(ctx, [ticket_id])
    return ticket, user_id


async def create_ticket(ctx: ActionContext) -> dict[str, Any]:
    p = ctx.params
    ticket: dict[str, Any] = {
        "subject": p["subject"],
        "comment": {"body": p["description"], "public": True},
        "requester": {"name": display_name(ctx), "email": visitor_email(ctx)},
    }
    if p.get("priority"):
        ticket["priority"] = p["priority"]
    import uuid

    # One key per action attempt: the transport's retries of this request reuse it.
    headers = {"Idempotency-Key": f"botctl-{uuid.uuid4()}"}
    created = body(
        await ctx.client.post("/api/v2/tickets.json", json={"ticket": ticket}, headers=headers), VENDOR
    )
    t = created.get("ticket") or {}
    touched(ctx, [t.get("id")])
    return pick(t, *_TICKET_FIELDS)


async def list_my_tickets(ctx: ActionContext) -> dict[str, Any]:
    user_id = await _find_user_id(ctx)
    if user_id is None:
        return {"tickets": [], "truncated": False}
    tickets: list[dict[str, Any]] = []
    params: dict[str, Any] = {"page[size]": 100}
    truncated = True
    for _ in range(MAX_PAGES):
        data = body(
            await ctx.client.get(f"/api/v2/users/{user_id}/tickets/requested.json", params=params), VENDOR
        )
        tickets.extend(t for t in data.get("tickets") or [] if t.get("requester_id") == user_id)
        meta = data.get("meta") or {}
        if not meta.get("has_more") or not meta.get("after_cursor"):
            truncated = False
            break
        params = {"page[size]": 100, "page[after]": meta["after_cursor"]}
    out = [pick(t, *_TICKET_FIELDS) for t in tickets]
    touched(ctx, (t["id"] for t in out))
    return {"tickets": out, "truncated": truncated}


async def get_my_ticket(ctx: ActionContext) -> dict[str, Any]:
    ticket, user_id = await _my_ticket(ctx, ctx.params["ticket_id"])
    data = body(
        await ctx.client.get(f"/api/v2/tickets/{ticket['id']}/comments.json", params={"sort_order": "desc"}),
        VENDOR,
    )
    # Internal notes (public: false) are for agents only.
    comments = [
        {
            "from": "you" if c.get("author_id") == user_id else "support",
            "body": c.get("plain_body") or c.get("body"),
            "created_at": c.get("created_at"),
        }
        for c in data.get("comments") or []
        if c.get("public") is True
    ]
    return {**pick(ticket, *_TICKET_FIELDS), "comments": comments[:20]}


async def add_comment(ctx: ActionContext) -> dict[str, Any]:
    ticket, user_id = await _my_ticket(ctx, ctx.params["ticket_id"])
    if ticket.get("status") == "closed":
        raise ActionError("invalid_params", "That ticket is closed; open a new one instead.")
    update = {"ticket": {"comment": {"body": ctx.params["body"], "public": True, "author_id": user_id}}}
    data = body(await ctx.client.put(f"/api/v2/tickets/{ticket['id']}.json", json=update), VENDOR)
    return pick(data.get("ticket") or ticket, "id", "status", "updated_at")


# docs/vendors.md §3.1: PKCE supported; client_id/client_secret in the body; refresh rotates and deletes the old
# pair; 30 min tokens. No RFC 7009 endpoint: DELETE /api/v2/oauth/tokens/{id}.json (this module's
# `revoke`).
OAUTH_CLIENT = VendorOAuth(
    authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",
    token_url="https://{subdomain}.zendesk.com/oauth/tokens",
    revoke_url=None,
    metadata_url=None,
    token_auth="client_secret_post",
    revoke_auth="client_secret_post",
    pkce=True,
    scope_in_token_request=True,
    rotates_refresh_tokens="yes",
    access_ttl="30 min",
    redirect_note="register http://127.0.0.1:PORT/callback exactly and set --redirect-port PORT",
)


CONNECTOR = Connector(
    name="zendesk",
    vendor=VENDOR,
    category="support",
    auth="oauth",
    auth_style="bearer",
    scopes=("tickets:read", "tickets:write", "users:read"),
    base_url="https://{subdomain}.zendesk.com",
    config=(
        ConfigField(
            "subdomain", "label", "acme for acme.zendesk.com", suffix=".zendesk.com", alias="--subdomain"
        ),
    ),
    sandbox_path="/zendesk/{subdomain}",
    default_headers={},
    validate=validate,
    revoke=revoke,
    actions=(
        Action(
            name="create_ticket",
            description="Open a support ticket for the visitor.",
            params=object_schema(
                {
                    "subject": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": {"type": "string", "minLength": 1, "maxLength": 10000},
                    "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
                },
                required=["subject", "description"],
            ),
            customer_specific=True,
            scopes=("tickets:write",),
            idempotent=False,
            handler=create_ticket,
        ),
        Action(
            name="list_my_tickets",
            description="The visitor's support tickets and their status.",
            params=object_schema(),
            customer_specific=True,
            scopes=("tickets:read", "users:read"),
            idempotent=True,
            handler=list_my_tickets,
        ),
        Action(
            name="get_my_ticket",
            description="One of the visitor's tickets with its public conversation.",
            params=object_schema({"ticket_id": _TICKET_ID}, required=["ticket_id"]),
            customer_specific=True,
            scopes=("tickets:read", "users:read"),
            idempotent=True,
            handler=get_my_ticket,
        ),
        Action(
            name="add_comment",
            description="Add the visitor's reply to one of their tickets.",
            params=object_schema(
                {"ticket_id": _TICKET_ID, "body": {"type": "string", "minLength": 1, "maxLength": 10000}},
                required=["ticket_id", "body"],
            ),
            customer_specific=True,
            scopes=("tickets:read", "tickets:write", "users:read"),
            idempotent=False,
            handler=add_comment,
        ),
    ),
    docs_url="https://developer.zendesk.com/api-reference/ticketing/",
    oauth_client=OAUTH_CLIENT,
    broader_scopes=_broader_scopes,
)
