"""The one duration / time-range parser every flag and file uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from botctl.durations import parse_duration, parse_since
from botctl.errors import UsageError


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("2d", 172800),
        ("1w", 604800),
        ("45", 45),
        (" 5 m ", 300),
        (30, 30),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1y", "-5m", "1.5h", "h", True, "10m\n1h", "\u0661\u0660m"])
def test_bad_durations_are_usage_errors(bad):
    with pytest.raises(UsageError) as e:
        parse_duration(bad, "--ttl")
    assert "--ttl" in e.value.message and e.value.hint


def test_since_takes_a_duration_or_a_date():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now=now) == "2026-12-03T10:00:00.000000Z"
    assert parse_since("1w", now=now) == "2026-11-26T12:00:00.000000Z"
    assert parse_since("2026-11-01T00:00", now=now) == "2026-11-01T00:00:00.000000Z"
    assert parse_since("2026-11-01T02:00+02:00", now=now) == "2026-11-01T00:00:00.000000Z"
    with pytest.raises(UsageError) as e:
        parse_since("yesterday", now=now, flag="--until")
    assert e.value.message.startswith("--until")
