"""A write recorded `unknown` (its node stalled past the lapse) and resolved later by an `action.outcome_late`
record: `botctl audit -f` (human and --json, backlog and live) says which record the late one resolves,
and the console counts the write under its real outcome and shows the resolution on both records' pages.
The records are written by the audit writer itself (`Session.audit`), as run_action writes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from botctl import workspaces
from botctl.session import Session
from test_console import start_console, stop

WRITE = "stripe.cancel_my_subscription"
ADA = {"type": "visitor", "sub": "u-ada", "email": "ada@example.com"}


def _ts(days_ago: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _interrupted(app: Session, request_id: str, pending_id: int, *, days_ago: int = 0) -> int:
    """A write's `action.started`, then the `unknown` another node recorded for it; the unknown's seq."""
    common = {
        "workspace": "acme",
        "actor": ADA,
        "action": WRITE,
        "connector": "stripe",
        "request_id": request_id,
    }
    app.audit(
        "action.started", outcome="pending", detail={"pending_id": pending_id}, ts=_ts(days_ago), **common
    )
    return app.audit(
        "action.run",
        outcome="unknown",
        reason="interrupted",
        detail={"pending_id": pending_id},
        ts=_ts(days_ago),
        **common,
    )["seq"]


def _late(app: Session, request_id: str, pending_id: int, unknown_seq: int, outcome: str = "ok") -> int:
    """The stalled node's real outcome for that write, naming the unknown it resolves; its seq."""
    return app.audit(
        "action.outcome_late",
        workspace="acme",
        actor=ADA,
        action=WRITE,
        connector="stripe",
        request_id=request_id,
        outcome=outcome,
        reason=None if outcome == "ok" else "forbidden",
        detail={"pending_id": pending_id, "resolves": {"seq": unknown_seq, "outcome": "unknown"}},
    )["seq"]


def _follow(*flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "botctl", "audit", "-f", "-n", "10", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr.read()


def _cells(line: str) -> dict[str, str]:
    seq, _time, _ws, _actor, event, _action, outcome, reason = line.rstrip("\n").split("\t")
    return {"seq": seq, "event": event, "outcome": outcome, "reason": reason}


def test_follow_says_what_a_late_outcome_resolves(home):
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        first = _interrupted(app, "req_LATEFOLLOW1", 1)
        first_late = _late(app, "req_LATEFOLLOW1", 1, first)
    proc = _follow()
    try:
        backlog = [_cells(proc.stdout.readline()) for _ in range(first_late)]  # every record so far
        time.sleep(1.0)  # the follower has read the head
        with Session(home) as app:
            second = _interrupted(app, "req_LATEFOLLOW2", 2)
        live = [_cells(proc.stdout.readline()) for _ in range(2)]  # the operator sees the unknown...
        assert [int(c["seq"]) for c in live] == [second - 1, second]
        assert live[1]["outcome"] == "unknown" and live[1]["reason"] == "interrupted"
        with Session(home) as app:  # ...then its real outcome arrives
            second_late = _late(app, "req_LATEFOLLOW2", 2, second, outcome="denied")
        line = _cells(proc.stdout.readline())
        assert int(line["seq"]) == second_late and line["event"] == "action.outcome_late"
        assert (
            line["outcome"] == "denied" and line["reason"] == f"forbidden (resolves #{second}, was unknown)"
        )
    finally:
        _stop(proc)
    # The backlog: the unknown shows its late outcome (as the listing does), the late record its target.
    by_seq = {int(c["seq"]): c for c in backlog}
    assert by_seq[first]["reason"] == f"interrupted (late: ok #{first_late})", backlog
    assert by_seq[first_late]["reason"] == f"(resolves #{first}, was unknown)", backlog


def test_follow_json_says_what_a_late_outcome_resolves(home):
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        first = _interrupted(app, "req_LATEFOLLOW3", 1)
        first_late = _late(app, "req_LATEFOLLOW3", 1, first)
    proc = _follow("--json")
    try:
        backlog = {r["seq"]: r for r in (json.loads(proc.stdout.readline()) for _ in range(first_late))}
        time.sleep(1.0)
        with Session(home) as app:
            second = _interrupted(app, "req_LATEFOLLOW4", 2)
        live = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [r["seq"] for r in live] == [second - 1, second] and "resolved_late" not in live[1]
        with Session(home) as app:
            second_late = _late(app, "req_LATEFOLLOW4", 2, second)
        got = json.loads(proc.stdout.readline())
        assert got["seq"] == second_late and got["event"] == "action.outcome_late" and got["outcome"] == "ok"
        assert got["resolves"] == {"seq": second, "outcome": "unknown", "reason": "interrupted"}
    finally:
        _stop(proc)
    assert backlog[first]["resolved_late"] == {"seq": first_late, "outcome": "ok"}
    assert backlog[first_late]["resolves"] == {"seq": first, "outcome": "unknown", "reason": "interrupted"}
    assert "resolves" not in backlog[first] and "resolved_late" not in backlog[first_late]


def test_a_late_record_naming_no_unknown_claims_nothing(home, cli):
    """`resolves` is read from the log: a late record naming a record that is not an `unknown` action.run
    (or a later one) is shown as it is, without a resolution."""
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        ok = app.audit("action.run", workspace="acme", actor=ADA, action=WRITE, outcome="ok")["seq"]
        bogus = _late(app, "req_LATEBOGUS01", 9, ok)
        ahead = _late(app, "req_LATEBOGUS02", 9, bogus + 5)
    recs = {r["seq"]: r for r in cli("audit", "--json").ndjson()}
    assert "resolves" not in recs[bogus] and "resolves" not in recs[ahead]
    assert "resolved_late" not in recs[ok]


@pytest.fixture
def resolved(home) -> dict[str, int]:
    """Yesterday a write recorded unknown, resolved `ok` today; today one still unknown, one resolved `denied`."""
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        yesterday = _interrupted(app, "req_LATECONSOLE1", 1, days_ago=1)
        still = _interrupted(app, "req_LATECONSOLE2", 2)
        refused = _interrupted(app, "req_LATECONSOLE3", 3)
        yesterday_late = _late(app, "req_LATECONSOLE1", 1, yesterday)
        _late(app, "req_LATECONSOLE3", 3, refused, outcome="denied")
    return {"yesterday": yesterday, "yesterday_late": yesterday_late, "still": still}


def test_console_counts_a_resolved_unknown_under_its_real_outcome(resolved):
    console = start_console()
    try:
        cookie = console.login()
        a = console.get("/api/activity?days=7", cookie).json()
        acme = next(w for w in a["workspaces"] if w["workspace"] == "acme")
        # Yesterday's write ran (counted on the day it was attempted); today one refused, one still unknown.
        assert (acme["actions"][-2], acme["refusals"][-2], acme["errors"][-2]) == (1, 0, 0), acme
        assert (acme["actions"][-1], acme["refusals"][-1], acme["errors"][-1]) == (0, 1, 1), acme
        page = console.get("/activity?days=7", cookie).text
        assert f'<th scope="row">{a["days"][-2]}</th><td>1</td><td>0</td><td>0</td>' in page
        assert "recorded late" in page
    finally:
        stop(console)


def test_console_record_pages_show_the_resolution(resolved):
    yesterday, yesterday_late = resolved["yesterday"], resolved["yesterday_late"]
    console = start_console()
    try:
        cookie = console.login()
        page = console.get(f"/records/{yesterday}", cookie).text
        assert f"<dt>resolved late</dt><dd>ok, record {yesterday_late}</dd>" in page, page
        assert f'<a href="/records/{yesterday_late}">Its real outcome, recorded late' in page
        assert "&#34;resolved_late&#34;" in page  # the raw JSON is `audit show --json`'s
        page = console.get(f"/records/{yesterday_late}", cookie).text
        assert f"<dt>resolves</dt><dd>record {yesterday} (was unknown: interrupted)</dd>" in page, page
        assert f'<a href="/records/{yesterday}">The record it resolves' in page
        page = console.get(f"/records/{resolved['still']}", cookie).text
        assert "resolved late" not in page
    finally:
        stop(console)
