"""A write recorded `unknown` (its node stalled past the lapse) and resolved later by an `action.outcome_late`
record: `botctl audit -f` (human and --json, backlog and live) says which record the late one resolves,
and the console counts the write under its real outcome and shows the resolution on both records' pages.
The records are written by the audit writer itself (`Session.audit`), as run_action writes them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from botctl import workspaces
from botctl.session import Session
from test_console import start_console, stop

WRITE = "stripe.cancel_my_subscription"
ADA = {"type": "visitor", "sub": "u-ada", "email": "ada@example.com"}


def _ts(days_ago: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _interrupted(
    app: Session, request_id: str, pending_id: int, *, days_ago: int = 0, workspace: str = "acme"
) -> int:
    """A write's `action.started`, then the `unknown` another node recorded for it; the unknown's seq."""
    common = {
        "workspace": workspace,
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


def _late(
    app: Session,
    request_id: str,
    pending_id: int,
    unknown_seq: int,
    outcome: str = "ok",
    workspace: str = "acme",
) -> int:
    """The stalled node's real outcome for that write, naming the unknown it resolves; its seq."""
    return app.audit(
        "action.outcome_late",
        workspace=workspace,
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


def _bare(mark: dict) -> dict:
    """A `resolves` / `resolved_late` mark without `node` (there on a PostgreSQL home only)."""
    return {k: v for k, v in mark.items() if k != "node"}


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
        # Every record so far; what is written once they are printed is after the head they were read at,
        # so it comes from the follower (`AuditReader.backlog`).
        backlog = [_cells(proc.stdout.readline()) for _ in range(first_late)]
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
        with Session(home) as app:
            second = _interrupted(app, "req_LATEFOLLOW4", 2)
        live = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [r["seq"] for r in live] == [second - 1, second] and "resolved_late" not in live[1]
        with Session(home) as app:
            second_late = _late(app, "req_LATEFOLLOW4", 2, second)
        got = json.loads(proc.stdout.readline())
        assert got["seq"] == second_late and got["event"] == "action.outcome_late" and got["outcome"] == "ok"
        assert _bare(got["resolves"]) == {"seq": second, "outcome": "unknown", "reason": "interrupted"}
    finally:
        _stop(proc)
    assert _bare(backlog[first]["resolved_late"]) == {"seq": first_late, "outcome": "ok"}
    assert _bare(backlog[first_late]["resolves"]) == {
        "seq": first,
        "outcome": "unknown",
        "reason": "interrupted",
    }
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


def test_follow_of_unknowns_learns_that_one_was_resolved(home):
    """`audit -f --outcome unknown` (or `--event action.run`) prints the late record that resolves an unknown
    it shows, though the late record has another outcome and event; a late record resolving an unknown
    outside the filter (another workspace) is not printed: the next matching record is the next line."""
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
    for flags in (("--outcome", "unknown"), ("--event", "action.run")):
        with Session(home) as app:
            first = _interrupted(app, "req_LATEFILTER1", 1)
        proc = _follow("--json", "-n", "1", "--workspace", "acme", *flags)
        try:
            assert json.loads(proc.stdout.readline())["seq"] == first  # the backlog: read before what follows
            with Session(home) as app:
                first_late = _late(app, "req_LATEFILTER1", 1, first, outcome="denied")
                other = _interrupted(app, "req_LATEFILTER2", 2, workspace="beta")
                _late(app, "req_LATEFILTER2", 2, other, workspace="beta")
                after = _interrupted(app, "req_LATEFILTER3", 3)
            got = json.loads(proc.stdout.readline())
            assert got["seq"] == first_late, got
            assert got["event"] == "action.outcome_late" and got["outcome"] == "denied"
            assert _bare(got["resolves"]) == {"seq": first, "outcome": "unknown", "reason": "interrupted"}
            nxt = json.loads(proc.stdout.readline())
            assert nxt["seq"] == after, nxt  # not beta's unknown, nor the late record that resolves it
        finally:
            _stop(proc)


def test_follow_of_unknowns_human_lines_say_which_was_resolved(home):
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        first = _interrupted(app, "req_LATEFILTER4", 1)
    proc = _follow("--outcome", "unknown", "-n", "1")
    try:
        assert _cells(proc.stdout.readline())["seq"] == str(first)
        with Session(home) as app:
            late = _late(app, "req_LATEFILTER4", 1, first)
            _interrupted(app, "req_LATEFILTER5", 2)  # a next line, whether the late one is printed or not
        line = _cells(proc.stdout.readline())
        assert line == {
            "seq": str(late),
            "event": "action.outcome_late",
            "outcome": "ok",
            "reason": f"(resolves #{first}, was unknown)",
        }
    finally:
        _stop(proc)


def test_listing_of_unknowns_shows_the_late_records_that_resolve_them(home, cli):
    """`audit --outcome unknown` (and the Python API, the console's timeline: the same selection) lists the
    late record of each unknown it lists, and only those: not one naming a record the filter leaves out,
    nor one naming a record that is not an unknown action.run."""
    from botctl import Botctl
    from botctl.console import data

    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        first = _interrupted(app, "req_LATELIST01", 1)
        second = _interrupted(app, "req_LATELIST02", 2)
        ok = app.audit("action.run", workspace="acme", actor=ADA, action=WRITE, outcome="ok")["seq"]
        second_late = _late(app, "req_LATELIST02", 2, second)
        bogus = _late(app, "req_LATELIST03", 3, ok)
        first_late = _late(app, "req_LATELIST01", 1, first, outcome="error")
        unrelated = app.audit("workspace.plan_changed", workspace="acme")["seq"]
    recs = cli("audit", "--outcome", "unknown", "--json").ndjson()
    assert [r["seq"] for r in recs] == [first, second, second_late, first_late]
    assert _bare(recs[0]["resolved_late"]) == {"seq": first_late, "outcome": "error"}
    assert _bare(recs[3]["resolves"]) == {"seq": first, "outcome": "unknown", "reason": "interrupted"}
    recs = cli("audit", "--event", "action.run", "--request-id", "req_LATELIST01", "--json").ndjson()
    assert [r["seq"] for r in recs] == [first, first_late]
    recs = cli("audit", "--outcome", "unknown", "-n", "1", "--json").ndjson()
    assert [r["seq"] for r in recs] == [first_late]  # the latest of what the filter shows
    recs = cli("audit", "--event", "action.run", "--json").ndjson()
    assert [r["seq"] for r in recs] == [first, second, ok, second_late, first_late]  # not `bogus`
    recs = cli("audit", "--event", "action.outcome_late", "--outcome", "ok", "--json").ndjson()
    assert [r["seq"] for r in recs] == [second_late, bogus]  # matching by themselves, as before
    assert unrelated not in [r["seq"] for r in cli("audit", "--outcome", "unknown", "--json").ndjson()]
    with Botctl(home=str(home.path)) as b:
        assert [r["seq"] for r in b.audit(outcome="unknown")] == [first, second, second_late, first_late]
    q = data.parse_query({"outcome": "unknown"})
    assert [r["seq"] for r in data.timeline(home, q)[0]] == [first_late, second_late, second, first]
    assert [r["seq"] for r in data.newer(home, q, first)[0]] == [second, second_late, first_late]


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


def _row(page: str, seq: int) -> str:
    """The timeline's row of record `seq`, as HTML."""
    return next(tr for tr in page.split("<tr")[1:] if f'aria-label="Record {seq}"' in tr)


def test_console_timeline_rows_show_the_resolution(resolved, home):
    """The timeline's rows say what `botctl audit`'s REASON column says, each mark a link to the other
    record: on the first page, in the live rows' JSON, and for records written after the page."""
    yesterday, yesterday_late, still = resolved["yesterday"], resolved["yesterday_late"], resolved["still"]
    console = start_console()
    try:
        cookie = console.login()
        for query in ("", "?outcome=unknown"):
            page = console.get("/" + query, cookie).text
            row = _row(page, yesterday)
            assert f'interrupted <a href="/records/{yesterday_late}"' in row, row
            assert f">(late: ok #{yesterday_late})</a>" in row, row
            row = _row(page, yesterday_late)
            assert f'<a href="/records/{yesterday}"' in row, row
            assert f">(resolves #{yesterday}, was unknown)</a>" in row, row
            assert "(late:" not in _row(page, still) and "(resolves" not in _row(page, still)
        head = int(re.search(r'data-after="(\d+)"', page).group(1))
        rows = {r["seq"]: r for r in console.get("/api/records?after=0", cookie).json()["rows"]}
        assert rows[yesterday]["late"] == {"seq": yesterday_late, "outcome": "ok"}
        assert rows[yesterday]["resolves"] is None and rows[yesterday_late]["late"] is None
        assert rows[yesterday_late]["resolves"] == {"seq": yesterday, "outcome": "unknown"}
        assert rows[still]["late"] is None and rows[still]["resolves"] is None
        # Live: the unknown arrives first (nothing to say yet), then the record of its real outcome.
        with Session(home) as app:
            unknown = _interrupted(app, "req_LATECONSOLE4", 4)
        got = console.get(f"/api/records?after={head}&outcome=unknown", cookie).json()
        assert [(r["seq"], r["late"]) for r in got["rows"]] == [(unknown, None)]
        with Session(home) as app:
            late = _late(app, "req_LATECONSOLE4", 4, unknown, outcome="denied")
        got = console.get(f"/api/records?after={got['next']}&outcome=unknown", cookie).json()
        assert [(r["seq"], r["outcome"], r["reason"], r["resolves"]) for r in got["rows"]] == [
            (late, "denied", "forbidden", {"seq": unknown, "outcome": "unknown"})
        ]
        # Both written before a poll: the unknown's row says how it ended.
        got = console.get(f"/api/records?after={head}&outcome=unknown", cookie).json()
        assert [r["late"] for r in got["rows"]] == [{"seq": late, "outcome": "denied"}, None]
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
