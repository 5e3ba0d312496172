"""Small helpers the eight connector modules share. No httpx import here (registry start-up)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botctl.connectors.base import ActionContext, ActionError
from botctl.email_addresses import email_key

if TYPE_CHECKING:
    import httpx

# Lists follow the vendor's pagination to the end, but never past this many pages.
MAX_PAGES = 10

# Request extension for a POST that only reads (a search, a GraphQL query) so the transport may
# retry it even inside a non-idempotent action. Same key as botctl.connectors.http.RETRY_SAFE.
RETRY_SAFE: dict[str, Any] = {"botctl.retry_safe": True}


def body(response: httpx.Response, vendor: str) -> Any:
    """The JSON body of a 2xx answer; malformed JSON is the vendor's fault (upstream_error)."""
    try:
        return response.json()
    except ValueError:
        raise ActionError(
            "upstream_error", f"{vendor} returned malformed JSON.", upstream_status=response.status_code
        ) from None


def visitor_email(ctx: ActionContext) -> str:
    """The verified visitor's email, from the identity token only."""
    return ctx.require_visitor().email or ""


def same_email(a: object, b: object) -> bool:
    """Whether a vendor's address is the visitor's: ASCII case ignored, nothing else (no Unicode case
    folding: KELVIN SIGN is not k, long s is not s); controls, bidi and spaces inside never match."""
    key = email_key(a)
    return key is not None and key == email_key(b)


def split_name(name: str | None) -> tuple[str, str]:
    parts = (name or "").split()
    if not parts:
        return "", ""
    return parts[0], " ".join(parts[1:])


def display_name(ctx: ActionContext) -> str:
    v = ctx.require_visitor()
    return (v.name or "").strip() or (v.email or "").split("@")[0]


def forbidden(what: str) -> ActionError:
    return ActionError("forbidden", f"That {what} does not belong to you.")


def touched(ctx: ActionContext, ids: Iterable[object]) -> None:
    """Record the vendor object ids an action read or changed (non-secret) for the audit record."""
    seen = ctx.audit.setdefault("object_ids", [])
    for i in ids:
        s = str(i)
        if s not in seen:
            seen.append(s)


def pick(obj: Any, *keys: str) -> dict[str, Any]:
    """Only the named fields of a vendor object: actions return lean, visitor-relevant data."""
    if not isinstance(obj, dict):
        return {}
    return {k: obj.get(k) for k in keys}


def object_schema(properties: dict[str, Any] | None = None, required: Iterable[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties or {}, "additionalProperties": False}
    req = list(required)
    if req:
        schema["required"] = req
    return schema
