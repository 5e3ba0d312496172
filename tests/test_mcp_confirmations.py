"""The confirmation store of botctl.mcp (issue #18) on both backends: SQLite files and PostgreSQL (its own
fresh database, dropped after). Bound to the visitor and the workspace, answered once, short-lived, params
checked against their digest, expiry recorded, the waiver audited."""

import contextlib
import json
import time

import pytest

from botctl.connectors import registry
from botctl.connectors.base import Visitor
from botctl.mcp import confirmations as cf

ADA = Visitor(sub="u-ada", email="ada@example.com")
GRACE = Visitor(sub="u-grace", email="grace@example.com")
ACTION = "calcom.cancel_my_booking"


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, home, monkeypatch):
    from botctl import workspaces
    from botctl.session import Session

    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            monkeypatch.setenv("BOTCTL_DATABASE_URL", request.getfixturevalue("pg_url"))
        a = Session(home)
        stack.callback(a.close)
        assert type(a.vault.conn).__module__.startswith(
            "botctl.postgres" if request.param == "postgresql" else "sqlite3"
        )
        workspaces.create(a, "acme", plan="pro")
        workspaces.create(a, "other", plan="pro")
        yield a


def _ws(app, name="acme"):
    from botctl import workspaces

    return workspaces.get(app.vault.conn, name)


def _ask(app, params=None, visitor=ADA, ws="acme", ttl=cf.TTL_S):
    _, spec = registry.find_action(ACTION)
    params = params or {"booking_id": "bkAda1", "reason": "plans changed"}
    return cf.create(
        app,
        _ws(app, ws),
        ACTION,
        params,
        visitor,
        cf.summarize(spec, "Cal.com", params),
        "req_test0001",
        ttl=ttl,
    )


def test_summary_says_exactly_what_will_happen(app):
    row = _ask(app)
    pub = row.public()
    assert pub["title"] == "Cancel one of your bookings (Cal.com)"
    assert pub["summary"].splitlines() == [
        "Cancel one of your bookings (Cal.com).",
        "Booking id: bkAda1",
        "Reason: plans changed",
    ]
    assert pub["status"] == "pending" and 0 < pub["expires_in_s"] <= cf.TTL_S
    assert row.id.startswith("cnf_") and len(row.id) >= 28


def test_only_that_visitor_answers_and_only_once(app):
    row = _ask(app)
    ws = _ws(app)
    assert cf.decide(app, ws, row.id, GRACE, "confirm") == (None, "not_found")
    assert cf.decide(app, ws, row.id, None, "confirm") == (None, "not_found")
    assert cf.decide(app, _ws(app, "other"), row.id, ADA, "confirm") == (
        None,
        "not_found",
    )  # another workspace
    assert cf.decide(app, ws, "cnf_nope", ADA, "confirm") == (None, "not_found")
    got, code = cf.decide(app, ws, row.id, ADA, "confirm")
    assert code is None and got.params == {"booking_id": "bkAda1", "reason": "plans changed"}
    assert cf.decide(app, ws, row.id, ADA, "confirm")[1] == "confirmation_used"
    assert cf.decide(app, ws, row.id, ADA, "cancel")[1] == "confirmation_used"
    cf.finish(app, row.id, "ok")
    after = cf.get(app, ws, row.id)
    assert after.status == "confirmed" and after.outcome == "ok" and after.params is None  # params dropped


def test_cancelled_keeps_no_params(app):
    row = _ask(app)
    assert cf.decide(app, _ws(app), row.id, ADA, "cancel")[1] is None
    after = cf.get(app, _ws(app), row.id)
    assert after.status == "cancelled" and after.params is None


def test_expired_is_refused_and_recorded_once(app):
    row = _ask(app, ttl=0.01)
    time.sleep(0.05)
    import asyncio

    assert asyncio.run(cf.expire_due(app)) == 1
    assert asyncio.run(cf.expire_due(app)) == 0
    assert cf.decide(app, _ws(app), row.id, ADA, "confirm")[1] == "confirmation_expired"
    from botctl.audit import AuditReader, Filters

    reader = AuditReader(app.home)
    try:
        recs = reader.latest(Filters(event="action.confirmation"), 50)
    finally:
        reader.close()
    assert [(r["reason"], r["actor"], r["detail"]["confirmation_id"]) for r in recs] == [
        ("confirmation_expired", {"type": "system"}, row.id)
    ]


def test_tampered_params_never_run(app):
    row = _ask(app)
    app.vault.conn.execute(
        "UPDATE mcp_confirmations SET params = ? WHERE id = ?",
        (json.dumps({"booking_id": "bkOther"}), row.id),
    )
    assert cf.decide(app, _ws(app), row.id, ADA, "confirm")[1] == "confirmation_used"


def test_waiver_is_per_workspace_and_audited(app):
    assert cf.waived(app.vault.conn, _ws(app)) == []
    assert cf.set_waived(app, _ws(app), ["zendesk.create_ticket", "zendesk.create_ticket"]) == [
        "zendesk.create_ticket"
    ]
    assert cf.waived(app.vault.conn, _ws(app)) == ["zendesk.create_ticket"]
    assert cf.waived(app.vault.conn, _ws(app, "other")) == []
    assert cf.set_waived(app, _ws(app), []) == []
