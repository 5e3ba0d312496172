"""Small helpers shared by the vendor modules: JSON responses, auth headers, times, cursors, forms."""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    media_type: str = "application/json; charset=utf-8",
) -> Response:
    return Response(dumps(body), status_code=status, headers=headers, media_type=media_type)


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers)


def new_id(prefix: str = "", nbytes: int = 12) -> str:
    return prefix + secrets.token_hex(nbytes)


def new_uuid() -> str:
    return str(uuid.uuid4())


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


def iso(ts: float, *, fraction: int = 0) -> str:
    """UTC ISO-8601 with a Z suffix and `fraction` sub-second digits (0, 3 or 6)."""
    dt = datetime.fromtimestamp(ts, UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        base += "." + f"{dt.microsecond:06d}"[:fraction]
    return base + "Z"


_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(value: str) -> float | None:
    """Parse an ISO-8601 date or date-time (naive means UTC). None when malformed."""
    value = value.strip()
    if not _ISO_RE.match(value):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(dumps(data)).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def int_param(value: str | None) -> int | None:
    """Strict integer parsing for query params; raises ValueError on junk."""
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[+-]?\d+", value.strip()):
        raise ValueError(value)
    return int(value)


def url_with(request: Request, **params: Any) -> str:
    """The request's own URL (as the client addressed it) with some query params replaced."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in params]
    query += [(k, str(v)) for k, v in params.items() if v is not None]
    return str(request.url.replace(query=urlencode(query)))


async def read_json(request: Request) -> tuple[Any, bool]:
    """(body, ok): ok is False when the body is not valid JSON. An empty body reads as None."""
    raw = await request.body()
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except (ValueError, UnicodeDecodeError):
        return None, False


async def read_form(request: Request) -> dict[str, Any]:
    """Decode an application/x-www-form-urlencoded body (or query) with Stripe's bracket notation.

    `a[b]=1&c[]=x&c[]=y&items[0][price]=p` -> {"a": {"b": "1"}, "c": ["x", "y"], "items": [{"price": "p"}]}
    """
    raw = (await request.body()).decode("utf-8", "replace")
    return decode_brackets(parse_qsl(raw, keep_blank_values=True))


def decode_brackets(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        m = re.match(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$", key)
        if not m:
            root[key] = value
            continue
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        node: Any = root
        for idx, part in enumerate(parts):
            last = idx == len(parts) - 1
            child: Any = value if last else ([] if parts[idx + 1] == "" else {})
            if part == "":
                if not isinstance(node, list):
                    break
                node.append(child)
            else:
                if not isinstance(node, dict):
                    break
                if last:
                    node[part] = value
                    break
                existing = node.get(part)
                if not isinstance(existing, type(child)):
                    node[part] = child
                child = node[part]
            node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_listify(node[k]) for k in sorted(node, key=int)]
        return {k: _listify(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node
