"""One way to read a duration and a point in time, for every flag and file that takes one.

    parse_duration("10m") == 600         `90s`, `10m`, `1h`, `1d`, `1w`, or a whole number of seconds
    parse_since("2h")                    a moment that long ago, or an ISO date/time (UTC without offset)

Used by `identity rotate --overlap`, `identity mint --ttl`, `--max-lifetime`, `apply -f` files and
`audit --since`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from botctl.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)\s*([smhdw]?)", re.ASCII)
HINT = "Use e.g. 90s, 10m, 1h, 1d, 1w."


def parse_duration(value: Any, flag: str | None = None) -> int:
    """Seconds, from `90s`, `10m`, `1h`, `1d`, `1w` or a whole number (already an int: taken as it is)."""
    what = f"{flag} {value!r}" if flag else repr(value)
    if isinstance(value, bool):
        raise UsageError(f"{what} is not a duration.", hint=HINT)
    if isinstance(value, int):
        return value
    m = _DURATION.fullmatch(str(value).strip().lower())
    if not m:
        raise UsageError(f"{what} is not a duration.", hint=HINT)
    return int(m.group(1)) * UNITS[m.group(2) or "s"]


def parse_since(text: str, *, now: datetime | None = None, flag: str = "--since") -> str:
    """An ISO timestamp (UTC, microseconds, `Z`): `now` minus a duration, or an ISO date/time."""
    now = now or datetime.now(UTC)
    m = _DURATION.fullmatch(text.strip().lower())
    if m and m.group(2):
        when = now - timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"{flag} {text!r} is neither a duration nor a date.",
                hint="Use e.g. 10m, 2h, 3d, or 2026-11-01T00:00.",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
