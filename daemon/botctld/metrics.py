"""Prometheus metrics for the edge (prometheus_client, one private registry per app)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("botctl_edge_requests", "HTTP requests by route template and status code",
                                ["route", "code"], registry=self.registry)
        self.latency = Histogram("botctl_edge_request_duration_seconds", "Request latency by route template",
                                 ["route"], buckets=BUCKETS, registry=self.registry)
        self.actions = Counter("botctl_actions", "Action attempts by action and outcome (ok or the error code)",
                               ["action", "outcome"], registry=self.registry)
        self.refresh_runs = Gauge("botctl_oauth_refresh_runs", "OAuth refresh-loop runs in the provider",
                                  registry=self.registry)
        self.refreshes = Gauge("botctl_oauth_refreshes", "OAuth token refreshes by result", ["result"],
                               registry=self.registry)
        self.audit_records = Gauge("botctl_audit_records_committed", "Audit records group-committed by the provider",
                                   registry=self.registry)
        self.audit_batches = Gauge("botctl_audit_commits", "Audit commits (fsyncs) by the provider",
                                   registry=self.registry)
        self.provider_up = Gauge("botctl_provider_up", "1 when the provider answered the last scrape",
                                 registry=self.registry)

    def request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def action(self, action: str, outcome: str) -> None:
        self.actions.labels(action, outcome).inc()

    def render(self, provider_status: dict[str, Any] | None) -> bytes:
        self.provider_up.set(1 if provider_status else 0)
        if provider_status:
            refresh = provider_status.get("refresh") or {}
            self.refresh_runs.set(refresh.get("runs", 0))
            self.refreshes.labels("ok").set(refresh.get("refreshed", 0))
            self.refreshes.labels("failed").set(refresh.get("failed", 0))
            audit = provider_status.get("audit") or {}
            self.audit_records.set(audit.get("records", 0))
            self.audit_batches.set(audit.get("batches", 0))
        return generate_latest(self.registry)
