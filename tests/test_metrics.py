"""/metrics means what it says: scraped from a real daemon after a scripted scenario (real actions over the
edge, a token the vendor expired and the provider refreshed after the 401, then a refresh the vendor
refused), every value checked against what happened; counters are counters (`_total`), no `_created`."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest

from operator_scenario import running_scenario

pytestmark = pytest.mark.slow

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def parse(text: str) -> tuple[dict[tuple[str, frozenset], float], dict[str, str]]:
    """{(name, labels): value} and {family: type} from the Prometheus text format."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, line
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_after_a_scripted_day(tmp_path):
    with running_scenario(tmp_path) as s:
        before, _ = parse(s.metrics())
        head_before = s.audit()[-1]["seq"]
        committed_before = value(before, "botctl_audit_records_committed_total")
        assert value(before, "botctl_audit_chain_ok") == 1.0
        assert (
            value(before, "botctl_connections", workspace="acme", connector="zendesk", state="active") == 1.0
        )

        ids = s.play_the_day()
        text = s.metrics()
        after, types = parse(text)

        # Counters are typed as counters, with _total; no _created series at all.
        assert not [line for line in text.splitlines() if "_created" in line]
        for family, kind in types.items():
            if kind == "counter":
                assert family.endswith("_total"), family
        for family in (
            "botctl_oauth_refreshes_total",
            "botctl_audit_records_committed_total",
            "botctl_audit_commits_total",
            "botctl_actions_total",
            "botctl_edge_requests_total",
        ):
            assert types[family] == "counter", family
        assert types["botctl_connections"] == "gauge" and types["botctl_audit_chain_ok"] == "gauge"

        # Actions, as the edge answered them.
        assert value(after, "botctl_actions_total", action="stripe.list_my_invoices", outcome="ok") == 2
        assert (
            value(after, "botctl_actions_total", action="stripe.cancel_my_subscription", outcome="not_found")
            == 1
        )
        assert value(after, "botctl_actions_total", action="zendesk.list_my_tickets", outcome="ok") == 2
        assert (
            value(after, "botctl_actions_total", action="zendesk.list_my_tickets", outcome="needs_reauth")
            == 1
        )

        # Refreshes: one after the 401 that worked, one the vendor refused — both on demand (in an
        # action), none by the background loop; the failed one counted where it happened.
        assert value(after, "botctl_oauth_refreshes_total", connector="zendesk", result="ok") == 1
        assert value(after, "botctl_oauth_refreshes_total", connector="zendesk", result="failed") == 1
        refresh_records = s.audit("--connector", "zendesk", "--event", "connection.refreshed")
        failed_records = s.audit("--connector", "zendesk", "--event", "connection.refresh_failed")
        assert len(refresh_records) == 1 and len(failed_records) == 1  # the audit log agrees
        # ...and each refresh record carries the request that needed it: the id the visitor was shown.
        assert [r["event"] for r in s.audit("--request-id", ids["needs_reauth"])] == [
            "connection.refresh_failed",
            "action.run",
        ]
        assert [(r["event"], r["outcome"]) for r in s.audit("--request-id", ids["retried"])] == [
            ("connection.refreshed", "ok"),
            ("action.run", "retried"),
            ("action.run", "ok"),
        ]

        # Connections per state: zendesk fell to needs_reauth, stripe is still active.
        assert (
            value(after, "botctl_connections", workspace="acme", connector="zendesk", state="needs_reauth")
            == 1
        )
        assert value(after, "botctl_connections", workspace="acme", connector="zendesk", state="active") == 0
        assert value(after, "botctl_connections", workspace="acme", connector="stripe", state="active") == 1

        # Every record the provider wrote between the scrapes, and nobody else wrote any.
        head_after = s.audit()[-1]["seq"]
        assert (
            value(after, "botctl_audit_records_committed_total") - committed_before
            == head_after - head_before
        )
        assert value(after, "botctl_audit_chain_ok") == 1.0 and value(after, "botctl_provider_up") == 1.0
        assert (
            value(
                after, "botctl_edge_requests_total", route="/v1/workspaces/{ws}/actions/{action}", code="200"
            )
            == 4
        )

        # Sinks: the file catches up (backlog 0, every record in it); the webhook nobody answers holds all.
        deadline = time.monotonic() + 30
        while value(after, "botctl_audit_sink_backlog", sink="offsite") != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            after, _ = parse(s.metrics())
        assert value(after, "botctl_audit_sink_backlog", sink="offsite") == 0
        shipped = [json.loads(line) for line in s.shipped.read_text().splitlines() if line.strip()]
        assert head_after in {rec.get("seq") for rec in shipped}
        assert value(after, "botctl_audit_sink_backlog", sink="down") == s.audit()[-1]["seq"]

        # The chain breaks (the newest record deleted behind the provider's back): the gauge says so.
        db = sqlite3.connect(s.home / "audit.db")
        db.execute("DELETE FROM records WHERE seq = (SELECT max(seq) FROM records)")
        db.commit()
        db.close()
        broken, _ = parse(s.metrics())
        assert value(broken, "botctl_audit_chain_ok") == 0.0
