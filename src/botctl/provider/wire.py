"""What crosses the provider's socket: the answer envelope, and what of the edge's request is believed.

Answers are `{"status": <HTTP status for the visitor>, "body": <JSON>, "headers"?: {...}}`, so the edge
relays without interpreting; the status comes from the one error catalogue (botctld.error_codes). The
edge is assumed compromised: a request id or client address it sends is used only in its documented shape.
"""

from __future__ import annotations

from typing import Any

from botctld import error_codes

PUBLIC_MESSAGE = {
    "invalid_identity": "The identity token was refused.",
    "not_found": "Nothing with that id was found for you.",
    "audit_unavailable": "Actions are paused until the operator checks the service; try again later.",
    "internal_error": "Something went wrong on our side.",
}


def request_id_of(data: dict[str, Any]) -> str:
    """The edge's request id when it has the documented shape; otherwise a new one (the edge is not trusted
    to write into the audit log: it may be compromised)."""
    from botctl.actions import REQUEST_ID, new_request_id

    rid = data.get("request_id")
    return rid if isinstance(rid, str) and REQUEST_ID.fullmatch(rid) else new_request_id()


def client_ip_of(data: dict[str, Any]) -> str | None:
    """The visitor's address as the edge resolved it, if it is an IP address (kept in the audit record)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(data.get("client_ip") or "")))
    except ValueError:
        return None


def error(code: str, message: str, request_id: str, *, retry_after: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": error_codes.status(code),
        "body": {"error": {"code": code, "message": message}, "request_id": request_id},
    }
    if retry_after is not None:
        out["headers"] = {"Retry-After": str(max(1, int(retry_after + 0.999)))}
    return out
