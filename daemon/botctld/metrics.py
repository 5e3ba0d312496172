"""Prometheus metrics for the edge (prometheus_client, one private registry per app).

Counted by the edge itself: requests, latency, action outcomes. Read from the provider's `/v1/status` at
each scrape (`ProviderCollector`): refresh attempts, audit commits, the chain's state, connections per
state, sink backlogs, knowledge answers and the time spent on them. Monotonic counts are exposed as counters (`_total`); no `_created` series.
docs/metrics.md lists every series and what it means.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONNECTION_STATES = ("active", "needs_reauth", "error")

# A `_created` series per counter and histogram doubles the output and says only when this process started.
prometheus_client.disable_created_metrics()


def _counters(section: dict[str, Any], *families: tuple[str, str, str]) -> Iterator[Any]:
    """A counter (name, help) per (name, key, help) whose key the provider's status section has."""
    for name, key, doc in families:
        if key in section:
            c = CounterMetricFamily(name, doc)
            c.add_metric([], float(section[key] or 0))
            yield c


class ProviderCollector:
    """The provider's counts and states, from the `/v1/status` answer of the current scrape. Nothing is
    emitted for what the provider did not say (down, or a field it lacks): absent, never a made-up 0."""

    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None

    def collect(self) -> Iterator[Any]:
        status = self.status
        if not status:
            return
        refresh = status.get("refresh") or {}
        runs = CounterMetricFamily(
            "botctl_oauth_refresh_runs", "Runs of the provider's background refresh loop"
        )
        runs.add_metric([], float(refresh.get("runs", 0)))
        yield runs
        errors = CounterMetricFamily(
            "botctl_oauth_refresh_loop_errors",
            "Background refresh-loop runs that raised (logged by the provider)",
        )
        errors.add_metric([], float(refresh.get("errors", 0)))
        yield errors
        attempts = CounterMetricFamily(
            "botctl_oauth_refreshes",
            "OAuth refresh token requests made by the "
            "provider, by connector and result (background and on-demand alike)",
            labels=["connector", "result"],
        )
        for a in refresh.get("attempts") or []:
            attempts.add_metric([str(a.get("connector")), str(a.get("result"))], float(a.get("count", 0)))
        yield attempts
        audit = status.get("audit") or {}
        yield from _counters(
            audit,
            ("botctl_audit_records_committed", "records", "Audit records committed by the provider"),
            ("botctl_audit_commits", "batches", "Audit commits (fsyncs) by the provider"),
            (
                "botctl_audit_records_refused",
                "refused",
                "Audit records refused because the chain's head disagreed with its checkpoint",
            ),
        )
        if audit.get("chain") in ("ok", "broken"):
            g = GaugeMetricFamily(
                "botctl_audit_chain_ok",
                "1 when the audit log's head matches its checkpoint "
                "(the check before every write), 0 when it does not",
            )
            g.add_metric([], 1.0 if audit["chain"] == "ok" else 0.0)
            yield g
        if "connections" in status:
            g = GaugeMetricFamily(
                "botctl_connections",
                "Connections by workspace, connector and state (1 for the "
                "state the connection is in, 0 for the others)",
                labels=["workspace", "connector", "state"],
            )
            for c in status.get("connections") or []:
                for state in dict.fromkeys((*CONNECTION_STATES, str(c.get("state")))):
                    g.add_metric(
                        [str(c.get("workspace")), str(c.get("connector")), state],
                        1.0 if state == c.get("state") else 0.0,
                    )
            yield g
        yield from _counters(
            status.get("answers") or {},
            ("botctl_knowledge_answers", "answered", "Knowledge answers looked up by the provider"),
            (
                "botctl_knowledge_answer_busy_seconds",
                "busy_seconds",
                "Seconds the provider's answers thread spent looking answers up (a rate near 1: answers queue)",
            ),
        )
        if "audit_sinks" in status:
            g = GaugeMetricFamily(
                "botctl_audit_sink_backlog",
                "Audit records committed but not yet delivered to each sink",
                labels=["sink"],
            )
            for s in status.get("audit_sinks") or []:
                if s.get("backlog") is not None:
                    g.add_metric([str(s.get("name"))], float(s["backlog"]))
            yield g


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "botctl_edge_requests",
            "HTTP requests by route template and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "botctl_edge_request_duration_seconds",
            "Request latency by route template",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.actions = Counter(
            "botctl_actions",
            "Action attempts by action and outcome (ok or the error code)",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.provider_up = Gauge(
            "botctl_provider_up", "1 when the provider answered this scrape", registry=self.registry
        )
        self.provider = ProviderCollector()
        self.registry.register(self.provider)

    def request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def action(self, action: str, outcome: str) -> None:
        self.actions.labels(action, outcome).inc()

    def render(self, provider_status: dict[str, Any] | None) -> bytes:
        self.provider_up.set(1 if provider_status else 0)
        self.provider.status = provider_status
        return generate_latest(self.registry)
