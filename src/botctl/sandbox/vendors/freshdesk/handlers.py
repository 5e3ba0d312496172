"""Freshdesk's endpoints: agents/me, contacts, tickets, replies and notes."""

from __future__ import annotations

import html
from typing import Any

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import Ctx, email_eq
from botctl.sandbox.wire import (
    int_param,
    iso,
    json_response,
    parse_time,
    read_json,
    url_with,
)

from .data import MAX_PER_PAGE, PRIORITIES, SOURCES, STATUSES, FreshdeskStore, contact_record, ticket


def conversation(
    store: FreshdeskStore,
    tid: int,
    user_id: int,
    body: str,
    *,
    private: bool,
    source: int,
    ts: float,
    incoming: bool = False,
) -> dict[str, Any]:
    cid = store.next_conversation_id
    store.next_conversation_id += 1
    conv = {
        "body": body if body.lstrip().startswith("<") else f"<div>{html.escape(body)}</div>",
        "body_text": html.unescape(body) if not body.lstrip().startswith("<") else body,
        "id": cid,
        "incoming": incoming,
        "private": private,
        "user_id": user_id,
        "support_email": seed.ACCOUNT_EMAIL if source == 0 else None,
        "source": source,
        "category": 2 if private else 3,
        "ticket_id": tid,
        "to_emails": [],
        "from_email": seed.ACCOUNT_EMAIL if source == 0 else None,
        "cc_emails": [],
        "bcc_emails": [] if source == 0 else None,
        "attachments": [],
        "created_at": iso(ts),
        "updated_at": iso(ts),
        "last_edited_at": None,
        "last_edited_user_id": None,
    }
    store.conversations.setdefault(tid, []).append(conv)
    return conv


def _record_not_found() -> Response:
    # Freshdesk answers a missing record with 404 and an empty body.
    return Response(b"", status_code=404, media_type="application/json")


def _validation(errors: list[dict[str, str]]) -> Response:
    return json_response({"description": "Validation failed", "errors": errors}, 400)


def _paginate(ctx: Ctx, items: list[Any]) -> Response:
    q = ctx.request.query_params
    errors = []
    try:
        page = int_param(q.get("page"))
        if page is not None and page < 1:
            raise ValueError
    except ValueError:
        errors.append({"field": "page", "message": "It should be a Positive Number", "code": "invalid_value"})
        page = 1
    try:
        per_page = int_param(q.get("per_page"))
        if per_page is not None and not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError
    except ValueError:
        errors.append(
            {
                "field": "per_page",
                "message": f"It should be a Positive Number less than or equal to {MAX_PER_PAGE}",
                "code": "invalid_value",
            }
        )
        per_page = None
    if errors:
        return _validation(errors)
    page = page or 1
    size = ctx.state.page_size(per_page, 30, MAX_PER_PAGE)
    start = (page - 1) * size
    chunk = items[start : start + size]
    headers = {}
    if start + size < len(items):
        headers["Link"] = f'<{url_with(ctx.request, page=page + 1, per_page=size)}>; rel="next"'
    return json_response(chunk, headers=headers)


def _render_ticket(ctx: Ctx, t: dict[str, Any], includes: set[str], *, listing: bool) -> dict[str, Any]:
    out = dict(t)
    if listing and "description" not in includes:
        # The list endpoint leaves out the description unless include=description.
        out.pop("description")
        out.pop("description_text")
    if "requester" in includes:
        c = ctx.store.contacts.get(t["requester_id"], {})
        out["requester"] = {k: c.get(k) for k in ("id", "name", "email", "mobile", "phone")}
    if "conversations" in includes and not listing:
        out["conversations"] = ctx.store.conversations.get(t["id"], [])[:10]
    if "stats" in includes:
        out["stats"] = {
            "agent_responded_at": None,
            "requester_responded_at": None,
            "first_responded_at": None,
            "status_updated_at": t["updated_at"],
            "reopened_at": None,
            "resolved_at": None,
            "closed_at": None,
            "pending_since": None,
        }
    return out


def _includes(ctx: Ctx, allowed: tuple[str, ...]) -> set[str] | Response:
    raw = ctx.request.query_params.get("include", "")
    inc = {p.strip() for p in raw.split(",") if p.strip()}
    bad = inc - set(allowed)
    if bad:
        return _validation(
            [
                {
                    "field": "include",
                    "message": f"It should be one of these values: '{','.join(allowed)}'",
                    "code": "invalid_value",
                }
            ]
        )
    return inc


# --- handlers ------------------------------------------------------------------------------------


async def agents_me(ctx: Ctx) -> Response:
    ts = iso(ctx.state.anchor - 300 * DAY)
    return json_response(
        {
            "available": True,
            "occasional": False,
            "id": seed.FRESHDESK_AGENT_ID,
            "ticket_scope": 1,
            "signature": None,
            "group_ids": [],
            "role_ids": [43000000011],
            "skill_ids": [],
            "available_since": None,
            "contact": {
                "active": True,
                "email": seed.ACCOUNT_EMAIL,
                "job_title": "Support agent",
                "language": "en",
                "last_login_at": ts,
                "mobile": None,
                "name": seed.ACCOUNT_NAME,
                "phone": None,
                "time_zone": "London",
                "created_at": ts,
                "updated_at": ts,
            },
            "created_at": ts,
            "updated_at": ts,
            "type": "support_agent",
            "focus_mode": True,
        }
    )


async def list_contacts(ctx: Ctx) -> Response:
    contacts = sorted(ctx.store.contacts.values(), key=lambda c: c["id"])
    if ctx.request.query_params.get("email"):
        contacts = [c for c in contacts if email_eq(c["email"], ctx.request.query_params["email"])]
    return _paginate(ctx, contacts)


async def get_contact(ctx: Ctx) -> Response:
    c = ctx.store.contacts.get(ctx.request.path_params["contact_id"])
    return json_response(c) if c else _record_not_found()


async def list_tickets(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    inc = _includes(ctx, ("requester", "stats", "description"))
    if isinstance(inc, Response):
        return inc
    tickets = list(ctx.store.tickets.values())
    if q.get("email"):
        contact = ctx.store.contact_by_email(q["email"])
        if contact is None:
            return _validation(
                [
                    {
                        "field": "email",
                        "message": "There is no contact matching the given email",
                        "code": "invalid_value",
                    }
                ]
            )
        tickets = [t for t in tickets if t["requester_id"] == contact["id"]]
    if q.get("requester_id"):
        try:
            rid = int_param(q["requester_id"])
        except ValueError:
            return _validation(
                [
                    {
                        "field": "requester_id",
                        "message": "It should be a Positive Number",
                        "code": "datatype_mismatch",
                    }
                ]
            )
        tickets = [t for t in tickets if t["requester_id"] == rid]
    if q.get("updated_since"):
        since = parse_time(q["updated_since"])
        if since is None:
            return _validation(
                [
                    {
                        "field": "updated_since",
                        "message": "It should be in the 'valid date time' format",
                        "code": "invalid_value",
                    }
                ]
            )
        tickets = [t for t in tickets if (parse_time(t["updated_at"]) or 0) >= since]
    else:
        # Without updated_since only tickets created in the last 30 days are listed (docs/vendors.md §4.3).
        tickets = [t for t in tickets if (parse_time(t["created_at"]) or 0) >= ctx.now - 30 * DAY]
    order_by = q.get("order_by", "created_at")
    if order_by not in ("created_at", "due_by", "updated_at", "status"):
        return _validation(
            [
                {
                    "field": "order_by",
                    "message": "It should be one of these values: 'created_at,due_by,updated_at,status'",
                    "code": "invalid_value",
                }
            ]
        )
    tickets.sort(key=lambda t: (t[order_by], t["id"]), reverse=q.get("order_type", "desc") != "asc")
    return _paginate(ctx, [_render_ticket(ctx, t, inc, listing=True) for t in tickets])


async def get_ticket(ctx: Ctx) -> Response:
    inc = _includes(ctx, ("conversations", "requester", "company", "stats"))
    if isinstance(inc, Response):
        return inc
    t = ctx.store.tickets.get(ctx.request.path_params["ticket_id"])
    return json_response(_render_ticket(ctx, t, inc, listing=False)) if t else _record_not_found()


async def list_conversations(ctx: Ctx) -> Response:
    tid = ctx.request.path_params["ticket_id"]
    if tid not in ctx.store.tickets:
        return _record_not_found()
    return _paginate(ctx, list(ctx.store.conversations.get(tid, [])))


async def create_ticket(ctx: Ctx) -> Response:
    body, ok = await read_json(ctx.request)
    if not ok:
        return json_response({"code": "invalid_json", "message": "Request body has invalid json format"}, 400)
    if not isinstance(body, dict):
        return _validation(
            [{"field": "body", "message": "It should be a JSON object", "code": "invalid_value"}]
        )
    errors: list[dict[str, str]] = []
    requester_fields = ("requester_id", "email", "phone", "twitter_id", "facebook_id", "unique_external_id")
    if not any(body.get(f) for f in requester_fields):
        errors.append(
            {
                "field": "requester_id",
                "message": "Please fill at least 1 of requester_id, phone, email, "
                "twitter_id, facebook_id, unique_external_id fields",
                "code": "missing_field",
            }
        )
    for name, allowed in (("status", STATUSES), ("priority", PRIORITIES)):
        if name not in body:
            errors.append(
                {
                    "field": name,
                    "message": f"It should be one of these values: '{','.join(map(str, allowed))}'",
                    "code": "missing_field",
                }
            )
        elif body[name] not in allowed:
            errors.append(
                {
                    "field": name,
                    "message": f"It should be one of these values: '{','.join(map(str, allowed))}'",
                    "code": "invalid_value",
                }
            )
    if "source" in body and body["source"] not in SOURCES:
        errors.append(
            {
                "field": "source",
                "message": f"It should be one of these values: '{','.join(map(str, SOURCES))}'",
                "code": "invalid_value",
            }
        )
    if not isinstance(body.get("subject"), str) or not body["subject"].strip():
        errors.append(
            {
                "field": "subject",
                "message": "It should not be blank as this is a mandatory field",
                "code": "missing_field",
            }
        )
    if not isinstance(body.get("description"), str) or not body["description"].strip():
        errors.append(
            {
                "field": "description",
                "message": "It should not be blank as this is a mandatory field",
                "code": "missing_field",
            }
        )
    email = body.get("email")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        errors.append(
            {
                "field": "email",
                "message": "It should be in the 'valid email address' format",
                "code": "invalid_value",
            }
        )
    requester = None
    if body.get("requester_id") is not None:
        requester = (
            ctx.store.contacts.get(body["requester_id"]) if isinstance(body["requester_id"], int) else None
        )
        if requester is None:
            errors.append(
                {
                    "field": "requester_id",
                    "message": "There is no contact matching the given requester_id",
                    "code": "invalid_value",
                }
            )
    if errors:
        return _validation(errors)
    store: FreshdeskStore = ctx.store
    if requester is None and isinstance(email, str):
        requester = store.contact_by_email(email)
        if requester is None:
            cid = store.next_contact_id
            store.next_contact_id += 1
            requester = contact_record(cid, body.get("name") or email.split("@")[0], email, ctx.now)
            store.contacts[cid] = requester
    if requester is None:
        return _validation(
            [
                {
                    "field": "requester_id",
                    "message": "The sandbox only supports requester_id or email",
                    "code": "invalid_value",
                }
            ]
        )
    tid = store.next_ticket_id
    store.next_ticket_id += 1
    desc = body["description"]
    text = html.unescape(desc) if desc.lstrip().startswith("<") else desc
    t = ticket(
        tid,
        body["subject"].strip(),
        text,
        requester["id"],
        body["status"],
        body["priority"],
        body.get("source", 2),
        ctx.now,
    )
    if desc.lstrip().startswith("<"):
        t["description"] = desc
    t["tags"] = [str(x) for x in body.get("tags") or []]
    t["type"] = body.get("type")
    t["cc_emails"] = [str(x) for x in body.get("cc_emails") or []]
    if isinstance(body.get("custom_fields"), dict):
        t["custom_fields"] = body["custom_fields"]
    store.tickets[tid] = t
    return json_response(
        t,
        201,
        {"Location": f"{str(ctx.request.base_url).rstrip('/')}/freshdesk/{ctx.tenant}/api/v2/tickets/{tid}"},
    )


async def _conversation_body(ctx: Ctx) -> dict[str, Any] | Response:
    if ctx.request.path_params["ticket_id"] not in ctx.store.tickets:
        return _record_not_found()
    body, ok = await read_json(ctx.request)
    if not ok:
        return json_response({"code": "invalid_json", "message": "Request body has invalid json format"}, 400)
    if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"].strip():
        return _validation(
            [
                {
                    "field": "body",
                    "message": "It should not be blank as this is a mandatory field",
                    "code": "missing_field",
                }
            ]
        )
    return body


async def reply(ctx: Ctx) -> Response:
    body = await _conversation_body(ctx)
    if isinstance(body, Response):
        return body
    tid = ctx.request.path_params["ticket_id"]
    conv = conversation(
        ctx.store,
        tid,
        body.get("user_id") or seed.FRESHDESK_AGENT_ID,
        body["body"],
        private=False,
        source=0,
        ts=ctx.now,
    )
    t = ctx.store.tickets[tid]
    conv["to_emails"] = [ctx.store.contacts.get(t["requester_id"], {}).get("email")]
    conv["cc_emails"] = [str(x) for x in body.get("cc_emails") or []]
    t["updated_at"] = iso(ctx.now)
    return json_response(conv, 201)


async def note(ctx: Ctx) -> Response:
    body = await _conversation_body(ctx)
    if isinstance(body, Response):
        return body
    tid = ctx.request.path_params["ticket_id"]
    conv = conversation(
        ctx.store,
        tid,
        body.get("user_id") or seed.FRESHDESK_AGENT_ID,
        body["body"],
        private=body.get("private", True) is not False,
        source=2,
        ts=ctx.now,
        incoming=bool(body.get("incoming", False)),
    )
    conv["notified_to"] = [str(x) for x in body.get("notify_emails") or []]
    ctx.store.tickets[tid]["updated_at"] = iso(ctx.now)
    return json_response(conv, 201)
