"""Freshdesk against the sandbox: contact binding, ownership, Link pagination, no blind retries."""

from __future__ import annotations

import time

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import LINUS


def seed_ids(h, who="ada@example.com"):
    return h.seed["freshdesk"][who]["tickets"]


def test_validate(h):
    assert "support@acme.example" in h.validate("freshdesk")
    with pytest.raises(ActionError) as e:
        h.validate("freshdesk", credential={"api_key": Secret("wrong-key")})
    assert e.value.code == "needs_reauth"


def test_list_my_tickets(h):
    out = h.ok("freshdesk.list_my_tickets")
    assert sorted(t["id"] for t in out["tickets"]) == sorted(seed_ids(h))
    assert {t["status"] for t in out["tickets"]} <= {"open", "pending", "resolved", "closed"}
    assert h.ok("freshdesk.list_my_tickets", visitor=LINUS)["tickets"] == []


def test_list_follows_link_pagination(h):
    h.sb.configure(max_page_size=2)
    out = h.ok("freshdesk.list_my_tickets")
    assert sorted(t["id"] for t in out["tickets"]) == sorted(seed_ids(h))
    assert h.route_requests("freshdesk", "GET /api/v2/tickets") == 3


def test_get_my_ticket(h):
    tid = seed_ids(h)[1]
    out = h.ok("freshdesk.get_my_ticket", {"ticket_id": tid})
    assert out["id"] == tid and out["conversation"]


def test_someone_elses_ticket_is_forbidden(h):
    tid = seed_ids(h, "grace@example.com")[0]
    err = h.fail("freshdesk.get_my_ticket", {"ticket_id": tid})
    assert err.code == "forbidden" and "Grace" not in err.message
    assert h.fail("freshdesk.get_my_ticket", {"ticket_id": 999999}).code == "not_found"


def test_create_ticket(h):
    out = h.ok("freshdesk.create_ticket", {"subject": "Help", "description": "Please", "priority": "high"})
    assert out["subject"] == "Help" and out["priority"] == "high"
    assert out["id"] in [t["id"] for t in h.ok("freshdesk.list_my_tickets")["tickets"]]


@pytest.mark.parametrize("kind", ["500", "503", "reset", "hang"])
def test_create_ticket_never_created_twice_under_faults(h, kind):
    before = len(h.ok("freshdesk.list_my_tickets")["tickets"])
    h.sb.fault("freshdesk", kind, count=1, method="POST", hang_seconds=3)
    run = h.run("freshdesk.create_ticket", {"subject": "Once", "description": "only once"}, timeout=0.5)
    # Sent and not confirmed: the outcome is unknown (never "try again", which could make a second ticket).
    assert run.error is not None and run.error.code == "outcome_unknown"
    assert run.waits == []  # a write without an idempotency key is never retried blindly
    # The sandbox logs a hung request once it lets go of it: wait for that before counting.
    deadline = time.monotonic() + 5
    while h.route_requests("freshdesk", "POST /api/v2/tickets") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.route_requests("freshdesk", "POST /api/v2/tickets") == 1
    assert len(h.ok("freshdesk.list_my_tickets")["tickets"]) <= before + 1


def test_read_survives_two_500s(h):
    h.sb.fault("freshdesk", "500", count=2, method="GET", path="/api/v2/tickets")
    run = h.run("freshdesk.list_my_tickets")
    assert run.error is None and len(run.result["tickets"]) == len(seed_ids(h))
    assert len(run.waits) == 2


def test_429_retry_after_is_honoured(h):
    h.sb.fault("freshdesk", "429", count=1, retry_after=5)
    run = h.run("freshdesk.list_my_tickets")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 5
