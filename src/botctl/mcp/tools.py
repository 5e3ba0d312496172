"""The actions as MCP tools: which ones a caller sees, their names, schemas and annotations.

Tool names: `connector__action` (`shopify__list_my_orders`): MCP-safe everywhere (letters, digits and `_`,
at most 64 characters, which the LLM APIs bots use accept; the dot of `connector.action` is not accepted by
all of them). `inputSchema` is the action's own JSON Schema; annotations come from the action's metadata:
a write (`Action.is_write`) is neither read-only nor assumed harmless (`destructiveHint`: it changes the
customer's data at a vendor), `idempotentHint` is the action's `idempotent`, and `openWorldHint` is false:
an action reaches only the workspace's own connected tools, for the verified visitor's own records.
"""

from __future__ import annotations

import re
from typing import Any

TOOL_NAME = re.compile(r"[a-z0-9_]{1,40}__[a-z0-9_]{1,60}")
STATUS_TOOL = "botctl__confirmation_status"
CONFIRM_NOTE = (
    " This changes the customer's data: the call returns `confirmation_required` with a summary and a "
    "confirmation id, the signed-in customer confirms it in the site's chat widget, and only then does "
    "it run. Ask for the outcome with botctl__confirmation_status."
)

CONFIRMATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["confirmation_required"],
    "properties": {
        "confirmation_required": {
            "type": "object",
            "required": [
                "confirmation_id",
                "action",
                "status",
                "title",
                "summary",
                "details",
                "expires_in_s",
            ],
            "properties": {
                "confirmation_id": {"type": "string"},
                "action": {"type": "string"},
                "status": {"type": "string"},
                "title": {"type": "string"},
                "summary": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
                "expires_in_s": {"type": "integer"},
            },
        }
    },
}
STATUS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["confirmation_id", "status"],
    "properties": {
        "confirmation_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "confirmed", "cancelled", "expired"]},
        "outcome": {"type": ["string", "null"]},
        "result": {},
    },
}


def tool_name(action: str) -> str:
    return action.replace(".", "__", 1)


def action_name(tool: str) -> str:
    """The action a tool name stands for (a name outside the grammar is passed on as given: run_action
    refuses and audits it escaped)."""
    return tool.replace("__", ".", 1) if TOOL_NAME.fullmatch(tool) else tool


def visible(entry: dict[str, Any], *, signed_in: bool, operator: bool) -> bool:
    """Whether a catalogue entry is a tool for this caller: available in the workspace, and for an anonymous
    visitor neither customer-specific nor a write (a change needs someone to confirm it)."""
    if entry["status"] != "available":
        return False
    return operator or signed_in or not (entry["customer_specific"] or entry["is_write"])


def as_tool(entry: dict[str, Any], *, confirm: bool) -> dict[str, Any]:
    write = entry["is_write"]
    tool: dict[str, Any] = {
        "name": tool_name(entry["name"]),
        "title": f"{entry['vendor']}: {entry['description'].rstrip('.')}",
        "description": entry["description"] + (CONFIRM_NOTE if write and confirm else ""),
        "inputSchema": dict(entry["params"]),
        "annotations": {
            "readOnlyHint": not write,
            "destructiveHint": write,
            "idempotentHint": entry["idempotent"],
            "openWorldHint": False,
        },
    }
    if write and confirm:
        tool["outputSchema"] = CONFIRMATION_SCHEMA  # the one shape such a call answers with
    return tool


def status_tool() -> dict[str, Any]:
    return {
        "name": STATUS_TOOL,
        "title": "botctl: what became of a change waiting for confirmation",
        "description": "Whether the customer confirmed or cancelled a change (by its confirmation id), and "
        "the outcome and result once it ran.",
        "inputSchema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["confirmation_id"],
            "properties": {"confirmation_id": {"type": "string", "maxLength": 64}},
        },
        "outputSchema": STATUS_OUTPUT,
        "annotations": {
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    }


def tools_for(
    conn: Any, ws: Any, *, signed_in: bool, operator: bool, waived: list[str]
) -> list[dict[str, Any]]:
    """The tools this caller may use in this workspace (plan, connection state and scopes as the catalogue
    says; anonymous visitors only the anonymous reads)."""
    from botctl import connections
    from botctl.actions import catalogue
    from botctl.connectors import registry
    from botctl.connectors.scopes import missing_scopes

    granted = {c.connector: c.scopes for c in connections.list_all(conn, ws)}
    out = []
    for entry in catalogue(conn, ws):
        found = registry.find_action(entry["name"])
        entry["is_write"] = bool(found and found[1].is_write)
        scopes = granted.get(entry["connector"])
        if found and scopes and missing_scopes(found[0], scopes, entry["scopes"]):
            continue  # the connection's grant does not cover it: calling it would only be refused
        if visible(entry, signed_in=signed_in, operator=operator):
            out.append(as_tool(entry, confirm=not operator and entry["name"] not in waived))
    if signed_in and not operator:
        out.append(status_tool())
    return out
