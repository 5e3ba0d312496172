"""The same words for a sink's backlog and an alert webhook's failures in `doctor` and `daemon status`."""

from __future__ import annotations

from typing import Any


def shipping_problems(sinks: list[dict[str, Any]], hooks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(message, fix) for each sink or alert webhook that is failing to deliver."""
    out = []
    for s in sinks:
        if s.get("failures"):
            out.append(
                (
                    f"audit sink {s['name']} ({s.get('destination')}): {s.get('backlog')} record(s) not delivered "
                    f"after {s['failures']} failed attempt(s); last error: {s.get('last_error')}",
                    "fix the destination (records are kept and retried), then `botctl audit sink flush`",
                )
            )
    for h in hooks:
        if h.get("failures"):
            out.append(
                (
                    f"alert webhook {h['name']} ({h.get('url')}): {h.get('pending')} alert(s) not delivered "
                    f"after {h['failures']} failed attempt(s); last error: {h.get('last_error')}",
                    "fix the webhook (alerts are kept and retried), then `botctl alert flush`",
                )
            )
    return out


def shipping_warnings(sinks: list[dict[str, Any]], hooks: list[dict[str, Any]]) -> list[str]:
    return [f"{message}: {fix}" for message, fix in shipping_problems(sinks, hooks)]
