"""Zendesk's endpoints: users, tickets, comments, with its pagination, validation and idempotency."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from starlette.responses import Response  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.vendors.base import Ctx, email_eq
from botctl.sandbox.wire import (
    decode_cursor,
    encode_cursor,
    int_param,
    iso,
    json_response,
    read_json,
    url_with,
)

from .data import (
    ANONYMOUS_USER,
    IDEMPOTENCY_TTL,
    MAX_PAGE,
    PRIORITIES,
    STATUSES,
    TYPES,
    SavedCreate,
    ZendeskStore,
    comment_record,
    ticket_record,
    user_record,
)

if TYPE_CHECKING:
    pass


def couldnt_authenticate() -> Response:
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
    result = ctx.vendor.authenticate(ctx)
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
                requester = user_record(uid, name, email, "end-user", ctx.now)
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
    ticket = ticket_record(
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
    c = comment_record(
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
        c = comment_record(
            ctx.store, ticket["id"], author["id"], text, public, ctx.now, comment.get("html_body")
        )
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
