"""Freshdesk (https://{domain}.freshdesk.com/api/v2): an agent's API key as Basic `key:X`.

The visitor is the Freshdesk contact with the token's email; a ticket is the visitor's when its
`requester_id` is that contact's id. Lists page with `page`/`per_page` and a `Link: rel="next"`
header. Freshdesk has no idempotency keys, so ticket creation is never retried blindly.
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
    same_email,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, ConfigField, Connector

if TYPE_CHECKING:
    import httpx

VENDOR = "Freshdesk"
STATUS = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}
PRIORITY = {1: "low", 2: "medium", 3: "high", 4: "urgent"}
_PRIORITY_CODE = {v: k for k, v in PRIORITY.items()}
SOURCE_CHAT = 7
# Without updated_since the list endpoint returns only tickets created in the last 30 days.
_SINCE = "2000-01-01T00:00:00Z"
PER_PAGE = 100


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    agent = body(await client.get("/api/v2/agents/me"), VENDOR)
    contact = agent.get("contact") or {}
    if not agent.get("id"):
        raise ActionError("needs_reauth", "Freshdesk did not say which agent this key belongs to.")
    return f"{contact.get('name') or 'agent'} ({contact.get('email')}) on {config.get('domain', 'freshdesk')}"


def _ticket(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": t.get("id"),
        "subject": t.get("subject"),
        "status": STATUS.get(t.get("status"), t.get("status")),
        "priority": PRIORITY.get(t.get("priority"), t.get("priority")),
        "created_at": t.get("created_at"),
        "updated_at": t.get("updated_at"),
    }


async def _contact_id(ctx: ActionContext) -> int | None:
    email = visitor_email(ctx)
    contacts = body(await ctx.client.get("/api/v2/contacts", params={"email": email}), VENDOR)
    for c in contacts if isinstance(contacts, list) else []:
        if same_email(c.get("email"), email) and c.get("id"):
            return int(c["id"])
    return None


async def create_ticket(ctx: ActionContext) -> dict[str, Any]:
    p = ctx.params
    payload = {
        "subject": p["subject"],
        "description": p["description"],
        "email": visitor_email(ctx),
        "name": display_name(ctx),
        "status": 2,
        "priority": _PRIORITY_CODE.get(p.get("priority") or "low", 1),
        "source": SOURCE_CHAT,
    }
    t = body(await ctx.client.post("/api/v2/tickets", json=payload), VENDOR)
    touched(ctx, [t.get("id")])
    return _ticket(t)


async def list_my_tickets(ctx: ActionContext) -> dict[str, Any]:
    contact_id = await _contact_id(ctx)
    if contact_id is None:
        return {"tickets": [], "truncated": False}
    found: list[dict[str, Any]] = []
    truncated = True
    for page in range(1, MAX_PAGES + 1):
        response = await ctx.client.get(
            "/api/v2/tickets",
            params={
                "requester_id": contact_id,
                "updated_since": _SINCE,
                "order_by": "updated_at",
                "per_page": PER_PAGE,
                "page": page,
            },
        )
        batch = body(response, VENDOR)
        batch = batch if isinstance(batch, list) else []
        found.extend(t for t in batch if t.get("requester_id") == contact_id)
        if "next" not in response.links or not batch:
            truncated = False
            break
    out = [_ticket(t) for t in found]
    touched(ctx, (t["id"] for t in out))
    return {"tickets": out, "truncated": truncated}


async def get_my_ticket(ctx: ActionContext) -> dict[str, Any]:
    ticket_id = ctx.params["ticket_id"]
    contact_id = await _contact_id(ctx)
    try:
        t = body(
            await ctx.client.get(f"/api/v2/tickets/{ticket_id}", params={"include": "conversations"}), VENDOR
        )
    except ActionError as e:
        if e.code == "not_found":
            raise ActionError("not_found", "No such ticket.", upstream_status=404) from None
        raise
    if contact_id is None or t.get("requester_id") != contact_id:
        raise forbidden("ticket")
    touched(ctx, [ticket_id])
    # Private notes are for agents only.
    conversation = [
        {
            "from": "you" if c.get("incoming") else "support",
            "body": c.get("body_text") or c.get("body"),
            "created_at": c.get("created_at"),
        }
        for c in t.get("conversations") or []
        if not c.get("private")
    ]
    return {**_ticket(t), "description": t.get("description_text"), "conversation": conversation}


CONNECTOR = Connector(
    name="freshdesk",
    vendor=VENDOR,
    category="support",
    auth="api_key",
    auth_style="basic_key_x",
    # API keys carry the agent's role, not scopes; these name what the agent's role must allow.
    scopes=("tickets:read", "tickets:write", "contacts:read"),
    base_url="https://{domain}.freshdesk.com",
    config=(
        ConfigField(
            "domain", "label", "acme for acme.freshdesk.com", suffix=".freshdesk.com", alias="--domain"
        ),
    ),
    sandbox_path="/freshdesk/{domain}",
    default_headers={},
    validate=validate,
    actions=(
        Action(
            name="create_ticket",
            description="Open a support ticket for the visitor.",
            params=object_schema(
                {
                    "subject": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": {"type": "string", "minLength": 1, "maxLength": 10000},
                    "priority": {"type": "string", "enum": list(_PRIORITY_CODE)},
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
            scopes=("tickets:read", "contacts:read"),
            idempotent=True,
            handler=list_my_tickets,
        ),
        Action(
            name="get_my_ticket",
            description="One of the visitor's tickets with its public conversation.",
            params=object_schema({"ticket_id": {"type": "integer", "minimum": 1}}, required=["ticket_id"]),
            customer_specific=True,
            scopes=("tickets:read", "contacts:read"),
            idempotent=True,
            handler=get_my_ticket,
        ),
    ),
    docs_url="https://developers.freshdesk.com/api/",
)
