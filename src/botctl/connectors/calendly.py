"""Calendly (API v2, https://api.calendly.com): OAuth 2.1 bearer tokens (or a PAT).

Resources are addressed by full URIs (`https://api.calendly.com/scheduled_events/<uuid>`); actions
take and return the trailing uuid. A booking is the visitor's when one of the event's invitees has
the visitor's email. Lists page with `count` + `page_token` (`pagination.next_page_token`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import (
    MAX_PAGES,
    body,
    forbidden,
    object_schema,
    same_email,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, Connector, VendorOAuth
from botctl.connectors.scopes import also_covered_by, any_of, write_implies_read

if TYPE_CHECKING:
    import httpx

VENDOR = "Calendly"
API = "https://api.calendly.com"  # canonical resource URIs, whatever host the client talks to
_UUID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}


def _uuid(uri: object) -> str:
    return str(uri or "").rstrip("/").rsplit("/", 1)[-1]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ActionError("invalid_params", f"not an ISO 8601 time: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


async def _me(client: httpx.AsyncClient) -> dict[str, Any]:
    res = body(await client.get("/users/me"), VENDOR).get("resource") or {}
    if not res.get("uri"):
        raise ActionError("upstream_error", "Calendly did not say which user this connection is.")
    return res


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    me = await _me(client)
    return f"{me.get('name') or 'Calendly user'} ({me.get('email') or me['uri']})"


def _event(ev: dict[str, Any]) -> dict[str, Any]:
    loc = ev.get("location") or {}
    return {
        "id": _uuid(ev.get("uri")),
        "name": ev.get("name"),
        "status": ev.get("status"),
        "start_time": ev.get("start_time"),
        "end_time": ev.get("end_time"),
        "location": loc.get("join_url") or loc.get("location") or loc.get("type"),
    }


async def available_times(ctx: ActionContext) -> dict[str, Any]:
    client, p = ctx.client, ctx.params
    now = datetime.now(UTC)
    start = max(_parse_time(p.get("start_time")) or now, now + timedelta(minutes=1))
    end = _parse_time(p.get("end_time")) or start + timedelta(days=7)
    # The endpoint refuses windows over 7 days (older guide) / 31 days (current reference).
    end = min(end, start + timedelta(days=7))
    if end <= start:
        raise ActionError("invalid_params", "end_time must be after start_time.")
    event_type = p.get("event_type")
    if event_type:
        uri = event_type if "/" in event_type else f"{API}/event_types/{event_type}"
    else:
        me = await _me(client)
        types = (
            body(
                await client.get("/event_types", params={"user": me["uri"], "active": "true", "count": 100}),
                VENDOR,
            ).get("collection")
            or []
        )
        if len(types) != 1:
            return {
                "choose_event_type": [
                    {"event_type": _uuid(t.get("uri")), "name": t.get("name"), "duration": t.get("duration")}
                    for t in types
                ]
            }
        uri = types[0]["uri"]
    data = body(
        await client.get(
            "/event_type_available_times",
            params={"event_type": uri, "start_time": _iso(start), "end_time": _iso(end)},
        ),
        VENDOR,
    )
    slots = [
        {"start_time": s.get("start_time"), "scheduling_url": s.get("scheduling_url")}
        for s in data.get("collection") or []
        if s.get("status", "available") == "available"
    ]
    return {"event_type": _uuid(uri), "times": slots}


async def list_my_bookings(ctx: ActionContext) -> dict[str, Any]:
    client = ctx.client
    email = visitor_email(ctx)
    me = await _me(client)
    params: dict[str, Any] = {"invitee_email": email, "sort": "start_time:asc", "count": 100}
    if ctx.params.get("upcoming_only"):
        params["min_start_time"] = _iso(datetime.now(UTC))
    if not ctx.params.get("include_canceled"):
        params["status"] = "active"
    # Listing by organization covers every host's calendar but needs an admin's token; a plain
    # member's connection sees its own user's events.
    org = me.get("current_organization")
    scope = {"organization": org} if org else {"user": me["uri"]}
    try:
        events, truncated = await _pages(client, "/scheduled_events", {**params, **scope})
    except ActionError as e:
        if not (org and e.code in ("missing_scope", "forbidden")):
            raise
        events, truncated = await _pages(client, "/scheduled_events", {**params, "user": me["uri"]})
    # The vendor's invitee_email filter narrows the list; ownership is still checked here, one invitee
    # lookup per event, like every other connector checks it (a dropped or changed filter would otherwise
    # show a visitor everyone's bookings).
    mine = await _owned_by_visitor(ctx, events)
    if len(mine) < len(events):
        ctx.audit["dropped_not_owned"] = len(events) - len(mine)
    out = [_event(ev) for ev in mine]
    touched(ctx, (e["id"] for e in out))
    return {"bookings": out, "truncated": truncated}


async def _owned_by_visitor(ctx: ActionContext, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import asyncio

    gate = asyncio.Semaphore(5)

    async def owned(ev: dict[str, Any]) -> bool:
        async with gate:
            try:
                await _my_invitee(ctx, _uuid(ev.get("uri")))
            except ActionError as e:
                if e.code in ("forbidden", "not_found"):
                    return False
                raise
            return True

    verdicts = await asyncio.gather(*(owned(ev) for ev in events))
    return [ev for ev, ok in zip(events, verdicts, strict=True) if ok]


async def _pages(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        q = dict(params)
        if token:
            q["page_token"] = token
        data = body(await client.get(path, params=q), VENDOR)
        items.extend(data.get("collection") or [])
        token = (data.get("pagination") or {}).get("next_page_token")
        if not token:
            return items, False
    return items, True


async def _my_invitee(ctx: ActionContext, uuid: str) -> dict[str, Any]:
    """The visitor's own invitee record on event `uuid`, or forbidden."""
    email = visitor_email(ctx)
    invitees, _ = await _pages(
        ctx.client, f"/scheduled_events/{uuid}/invitees", {"email": email, "count": 100}
    )
    for inv in invitees:
        if same_email(inv.get("email"), email):
            return inv
    raise forbidden("booking")


async def cancel_my_booking(ctx: ActionContext) -> dict[str, Any]:
    client = ctx.client
    visitor_email(ctx)  # no visitor, no vendor call
    uuid = ctx.params["booking_id"]
    try:
        event = body(await client.get(f"/scheduled_events/{uuid}"), VENDOR).get("resource") or {}
    except ActionError as e:
        if e.code == "not_found":
            raise ActionError("not_found", "No such booking.", upstream_status=404) from None
        raise
    mine = await _my_invitee(ctx, uuid)
    touched(ctx, [uuid])
    if event.get("status") == "canceled" or mine.get("status") == "canceled":
        return {"id": uuid, "status": "canceled", "already_canceled": True}
    end = _parse_time(event.get("end_time"))
    if end is not None and end <= datetime.now(UTC):
        raise ActionError("invalid_params", "That meeting is already over; it can no longer be canceled.")
    counter = event.get("invitees_counter") or {}
    if int(counter.get("active") or 0) > 1:
        # Cancelling the event would cancel it for every invitee; the visitor may only drop out.
        return {"id": uuid, "canceled": False, "reason": "group event", "cancel_url": mine.get("cancel_url")}
    reason = ctx.params.get("reason") or "Canceled by the invitee via the support assistant."
    await client.post(f"/scheduled_events/{uuid}/cancellation", json={"reason": reason})
    return {"id": uuid, "status": "canceled"}


# docs/vendors.md §1.1: web clients authenticate with Basic; PKCE recommended; single-use refresh tokens; 2 h tokens;
# POST /oauth/revoke takes client_id, client_secret and token in the body.
OAUTH_CLIENT = VendorOAuth(
    authorize_url="https://auth.calendly.com/oauth/authorize",
    token_url="https://auth.calendly.com/oauth/token",
    revoke_url="https://auth.calendly.com/oauth/revoke",
    metadata_url="https://calendly.com/.well-known/oauth-authorization-server",
    token_auth="client_secret_basic",
    revoke_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens="yes (single use)",
    access_ttl="2 h",
    redirect_note="register http://127.0.0.1:PORT/callback and set --redirect-port PORT",
)


CONNECTOR = Connector(
    name="calendly",
    vendor=VENDOR,
    category="scheduling",
    auth="oauth",
    auth_style="bearer",
    scopes=(
        "users:read",
        "scheduled_events:read",
        "scheduled_events:write",
        "event_types:read",
        "availability:read",
    ),
    base_url="https://api.calendly.com",
    config=(),
    sandbox_path="/calendly",
    default_headers={},
    validate=validate,
    actions=(
        Action(
            name="available_times",
            description="Open booking times for an event type in the next days (at most 7 days from start).",
            params=object_schema(
                {
                    "event_type": {
                        "type": "string",
                        "maxLength": 200,
                        "description": "Event type uuid or URI; omit when the account has a single one.",
                    },
                    "start_time": {"type": "string", "format": "date-time", "maxLength": 40},
                    "end_time": {"type": "string", "format": "date-time", "maxLength": 40},
                }
            ),
            customer_specific=False,
            scopes=("event_types:read", "availability:read"),
            idempotent=True,
            handler=available_times,
        ),
        Action(
            name="list_my_bookings",
            description="The visitor's scheduled meetings.",
            params=object_schema(
                {
                    "upcoming_only": {"type": "boolean", "default": False},
                    "include_canceled": {"type": "boolean", "default": False},
                }
            ),
            customer_specific=True,
            scopes=("users:read", "scheduled_events:read"),
            idempotent=True,
            handler=list_my_bookings,
        ),
        Action(
            name="cancel_my_booking",
            description="Cancel one of the visitor's meetings.",
            params=object_schema(
                {"booking_id": _UUID, "reason": {"type": "string", "maxLength": 1000}},
                required=["booking_id"],
            ),
            customer_specific=True,
            scopes=("scheduled_events:read", "scheduled_events:write"),
            idempotent=False,
            handler=cancel_my_booking,
        ),
    ),
    docs_url="https://developer.calendly.com/api-docs",
    oauth_client=OAUTH_CLIENT,
    # A write scope covers its read; the scope catalog files available times under event_types.
    broader_scopes=any_of(
        write_implies_read(":read", ":write"),
        also_covered_by({"availability:read": ("event_types:read", "event_types:write")}),
    ),
)
