"""HubSpot CRM v3 (https://api.hubapi.com): OAuth bearer tokens (or a Service Key).

The visitor's contact is looked up by email with `idProperty=email`; the contact a handler reads
or writes is always that one, and its `email` property is checked against the token's email.
Notes are associated to the contact with the HubSpot-defined note→contact type 202.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import (
    body,
    forbidden,
    object_schema,
    same_email,
    split_name,
    touched,
    visitor_email,
)
from botctl.connectors.base import Action, ActionContext, ActionError, Connector, VendorOAuth
from botctl.connectors.scopes import write_implies_read

if TYPE_CHECKING:
    import httpx

VENDOR = "HubSpot"
CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = ("email", "firstname", "lastname", "phone", "company", "jobtitle", "lifecyclestage")
# The only contact properties a visitor may set; identity (email, names) comes from the token.
EDITABLE = ("phone", "company", "jobtitle")
NOTE_TO_CONTACT = 202
READ, WRITE = "crm.objects.contacts.read", "crm.objects.contacts.write"


async def validate(client: httpx.AsyncClient, config: Mapping[str, str]) -> str:
    info = body(await client.get("/account-info/v3/details"), VENDOR)
    if not info.get("portalId"):
        raise ActionError("upstream_error", "HubSpot did not say which portal this connection is.")
    where = f" ({info['uiDomain']})" if info.get("uiDomain") else ""
    return f"HubSpot portal {info['portalId']}{where}"


async def _my_contact(ctx: ActionContext) -> dict[str, Any] | None:
    from urllib.parse import quote

    email = visitor_email(ctx)
    try:
        contact = body(
            await ctx.client.get(
                f"{CONTACTS}/{quote(email, safe='@')}",
                params={"idProperty": "email", "properties": ",".join(PROPERTIES)},
            ),
            VENDOR,
        )
    except ActionError as e:
        if e.code == "not_found":
            return None
        raise
    if not same_email((contact.get("properties") or {}).get("email"), email):
        raise forbidden("contact")
    touched(ctx, [contact.get("id")])
    return contact


def _contact(c: dict[str, Any]) -> dict[str, Any]:
    props = c.get("properties") or {}
    return {"id": c.get("id"), **{k: props.get(k) for k in PROPERTIES}}


async def get_my_contact(ctx: ActionContext) -> dict[str, Any]:
    contact = await _my_contact(ctx)
    return {"found": False} if contact is None else {"found": True, **_contact(contact)}


async def upsert_my_contact(ctx: ActionContext) -> dict[str, Any]:
    changes = {k: ctx.params[k] for k in EDITABLE if k in ctx.params}
    contact = await _my_contact(ctx)
    if contact is None:
        first, last = split_name(ctx.require_visitor().name)
        props = {"email": visitor_email(ctx), **changes}
        if first:
            props["firstname"] = first
        if last:
            props["lastname"] = last
        try:
            created = body(await ctx.client.post(CONTACTS, json={"properties": props}), VENDOR)
            touched(ctx, [created.get("id")])
            return {"created": True, **_contact(created)}
        except ActionError as e:
            # 409: the contact appeared meanwhile (a retried create, a concurrent one): update it.
            if e.upstream_status != 409:
                raise
            contact = await _my_contact(ctx)
            if contact is None:
                raise
    if not changes:
        return {"created": False, **_contact(contact)}
    updated = body(
        await ctx.client.patch(f"{CONTACTS}/{contact['id']}", json={"properties": changes}), VENDOR
    )
    # The PATCH answer carries only the properties it changed: lay them over what was read.
    merged = {**(contact.get("properties") or {}), **(updated.get("properties") or {})}
    return {"created": False, **_contact({"id": contact["id"], "properties": merged})}


async def add_note(ctx: ActionContext) -> dict[str, Any]:
    contact = await _my_contact(ctx)
    if contact is None:
        raise ActionError("not_found", "There is no HubSpot contact for you yet.")
    note = {
        "properties": {
            "hs_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "hs_note_body": ctx.params["body"],
        },
        "associations": [
            {
                "to": {"id": contact["id"]},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}],
            }
        ],
    }
    created = body(await ctx.client.post("/crm/v3/objects/notes", json=note), VENDOR)
    touched(ctx, [created.get("id")])
    return {"id": created.get("id"), "contact_id": contact["id"], "created_at": created.get("createdAt")}


# docs/vendors.md §5.1: v3 token endpoints, parameters in the body, PKCE supported, 30 min tokens, rotation not
# documented (whatever refresh_token comes back is stored); POST /oauth/v3/token/revoke.
OAUTH_CLIENT = VendorOAuth(
    authorize_url="https://app.hubspot.com/oauth/authorize",
    token_url="https://api.hubapi.com/oauth/v3/token",
    revoke_url="https://api.hubapi.com/oauth/v3/token/revoke",
    metadata_url=None,
    token_auth="client_secret_post",
    revoke_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens="not documented",
    access_ttl="30 min",
    redirect_note="register http://localhost:PORT/callback (HubSpot matches exactly) and set "
    "--redirect-uri http://localhost:PORT/callback",
)


CONNECTOR = Connector(
    name="hubspot",
    vendor=VENDOR,
    category="crm",
    auth="oauth",
    auth_style="bearer",
    scopes=("oauth", READ, WRITE),
    base_url="https://api.hubapi.com",
    config=(),
    sandbox_path="/hubspot",
    default_headers={},
    validate=validate,
    actions=(
        Action(
            name="get_my_contact",
            description="The visitor's CRM contact record (name, phone, company, lifecycle stage).",
            params=object_schema(),
            customer_specific=True,
            scopes=(READ,),
            idempotent=True,
            handler=get_my_contact,
        ),
        Action(
            name="upsert_my_contact",
            description="Create the visitor's contact or update its phone, company or job title.",
            params=object_schema(
                {
                    "phone": {"type": "string", "maxLength": 40, "pattern": r"^[0-9 +().-]*$"},
                    "company": {"type": "string", "maxLength": 200},
                    "jobtitle": {"type": "string", "maxLength": 200},
                }
            ),
            customer_specific=True,
            scopes=(READ, WRITE),
            idempotent=True,
            writes=True,
            handler=upsert_my_contact,
        ),
        Action(
            name="add_note",
            description="Log a note on the visitor's contact record (e.g. what they asked for).",
            params=object_schema(
                {"body": {"type": "string", "minLength": 1, "maxLength": 5000}}, required=["body"]
            ),
            customer_specific=True,
            scopes=(READ, WRITE),
            idempotent=False,
            handler=add_note,
        ),
    ),
    docs_url="https://developers.hubspot.com/docs/api-reference",
    oauth_client=OAUTH_CLIENT,
    broader_scopes=write_implies_read(".read", ".write"),
)
