"""Reading what a visitor sends: a JSON object body within limits, and the identity token."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from botctld.state import err

MAX_BODY = 64 * 1024
MAX_TOKEN = 8 * 1024
MAX_DEPTH = 32  # JSON nesting: the provider walks params recursively (schema checks, audit scrubbing)


class BodyTooLarge(Exception):
    pass


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity: Python accepts them, JSON does not


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")  # 1e999: not representable, and not JSON once re-encoded
    return value


def depth(value: Any) -> int:
    """How deeply containers nest in a parsed JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(
    request: Request, fields: set[str], shape: str
) -> tuple[dict[str, Any] | None, Response | None]:
    """The body as a JSON object with only `fields`, or the stable 4xx that explains what is wrong."""
    body, bad = await json_value(request)
    if bad is not None:
        return None, bad
    if not isinstance(body, dict) or set(body) - fields:
        return None, err(
            "invalid_request",
            f"The body must be {shape} with no other fields.",
            request.state.rid,
            request.state.cors,
        )
    return body, None


async def json_value(request: Request) -> tuple[Any, Response | None]:
    """The body as strict JSON within the limits (size, nesting), or the stable 4xx that explains what is wrong."""
    rid, cors = request.state.rid, request.state.cors
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return None, err("unsupported_media_type", "Send the body as application/json.", rid, cors)
    try:
        raw = await read_body(request)
    except BodyTooLarge:
        return None, err("payload_too_large", f"The request body is over {MAX_BODY // 1024} KiB.", rid, cors)
    except ClientDisconnect:  # gone, or too slow to send the body (protocol.BODY_TIMEOUT): nobody reads this
        return None, err("invalid_request", "The request body did not arrive.", rid, cors)
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite) if raw else {}
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode()  # lone surrogates ("\ud800") fail here
    except (ValueError, RecursionError):
        return None, err("invalid_request", "The body is not valid JSON.", rid, cors)
    if depth(body) > MAX_DEPTH:
        return None, err("invalid_request", f"The body is nested over {MAX_DEPTH} levels deep.", rid, cors)
    return body, None


def identity_token(request: Request) -> str | None:
    """The raw identity token (forwarded as data: the provider verifies it and audits any refusal).

    Several Authorization fields are joined as one list value (RFC 9110 §5.3): never a valid token, so
    an ambiguous credential is refused and audited rather than one of them picked."""
    values = request.headers.getlist("authorization")
    if not values:
        return None
    auth = ", ".join(values)
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else auth
    return token[: MAX_TOKEN + 1]  # the provider refuses anything over the cap
