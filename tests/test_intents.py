"""Write-ahead intents: which pending writes are recovered, and what their record says."""

import asyncio
import json
import os
import socket
import subprocess
import sys

from botctl import intents, workspaces
from botctl.session import Session


def _rows(app):
    return app.vault.conn.execute("SELECT id, owner FROM pending_actions ORDER BY id").fetchall()


def _set_owner(app, pending_id, owner):
    app.vault.conn.execute("UPDATE pending_actions SET owner = ? WHERE id = ?", (owner, pending_id))


def test_only_writes_of_gone_processes_are_recovered(home):
    host = socket.gethostname()
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        actor = {"type": "visitor", "sub": "u-ada", "email": "ada@example.com"}
        ids = [
            intents.begin(
                app,
                workspace="acme",
                action="zendesk.create_ticket",
                connector="zendesk",
                actor=actor,
                request_id=f"req_{i}",
            )
            for i in range(5)
        ]
        for i in ids:
            intents.started(
                app,
                i,
                app.audit(
                    "action.started",
                    workspace="acme",
                    actor=actor,
                    outcome="pending",
                    detail={"pending_id": i},
                )["seq"],
            )
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            _set_owner(app, ids[0], f"{host}:{dead.pid}:aaaa")  # its process has exited
            _set_owner(app, ids[1], f"{host}:{alive.pid}:bbbb")  # still running (a CLI `actions run`)
            _set_owner(app, ids[2], f"{host}:{os.getpid()}:cccc")  # our pid, an earlier process's nonce
            _set_owner(app, ids[3], f"other-host:{dead.pid}:dddd")  # another machine: cannot tell
            # ids[4]: ours, in flight right now
            assert asyncio.run(intents.recover(app)) == 2
            assert [r[0] for r in _rows(app)] == [ids[1], ids[3], ids[4]]
        finally:
            alive.kill()
            alive.wait()
    # Read back the way an operator does.
    out = subprocess.run(
        [sys.executable, "-m", "botctl", "audit", "--json", "--outcome", "unknown"],
        capture_output=True,
        text=True,
        env={**os.environ, "BOTCTL_HOME": str(home.path)},
    )
    recs = [json.loads(x) for x in out.stdout.splitlines()]
    assert sorted(r["request_id"] for r in recs) == ["req_0", "req_2"]
    assert all(r["reason"] == "interrupted" and r["actor"]["email"] == "ada@example.com" for r in recs)
    assert {r["detail"]["pending_id"] for r in recs} == {ids[0], ids[2]}


def test_one_outcome_per_write_whatever_the_moment_of_death(home):
    """Killed before `action.started` was durable: nothing reached the vendor (outcome error). Killed after
    the outcome record but before the row was cleared: no second record."""
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
        actor = {"type": "visitor", "sub": "u-ada", "email": "ada@example.com"}
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        gone = f"{socket.gethostname()}:{dead.pid}:eeee"
        early = intents.begin(
            app,
            workspace="acme",
            action="hubspot.add_note",
            connector="hubspot",
            actor=actor,
            request_id="req_early",
        )
        late = intents.begin(
            app,
            workspace="acme",
            action="hubspot.add_note",
            connector="hubspot",
            actor=actor,
            request_id="req_late",
        )
        seq = app.audit(
            "action.started", workspace="acme", actor=actor, outcome="pending", detail={"pending_id": late}
        )["seq"]
        intents.started(app, late, seq)
        app.audit(
            "action.run",
            workspace="acme",
            actor=actor,
            action="hubspot.add_note",
            outcome="ok",
            request_id="req_late",
            detail={"pending_id": late},
        )
        for i in (early, late):
            _set_owner(app, i, gone)
        assert asyncio.run(intents.recover(app)) == 1
        assert _rows(app) == []
    out = subprocess.run(
        [sys.executable, "-m", "botctl", "audit", "--json", "--event", "action.run"],
        capture_output=True,
        text=True,
        env={**os.environ, "BOTCTL_HOME": str(home.path)},
    )
    runs = [json.loads(x) for x in out.stdout.splitlines()]
    assert sorted((r["request_id"], r["outcome"], r["reason"]) for r in runs) == [
        ("req_early", "error", "interrupted"),
        ("req_late", "ok", None),
    ]


WRITE = "stripe.cancel_my_subscription"


def _stalled_write(home, sandbox, monkeypatch, vendor_result):
    """Run WRITE (its vendor call replaced by `vendor_result`) while, mid-call, its process is wrongly taken
    for gone: another recoverer (two, racing, with the same stale view) records the write as interrupted.
    Returns what run_action returned or raised, and the records of its request."""
    from dataclasses import replace

    from botctl.actions import run_action
    from botctl.connectors import registry
    from botctl.connectors.base import ActionError, Visitor

    creds = sandbox.credentials()
    with Session(home) as app:
        workspaces.create(app, "acme", plan="pro")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "botctl",
            "connect",
            "stripe",
            "-w",
            "acme",
            "--sandbox",
            sandbox.url,
            "--api-key-stdin",
        ],
        input=creds["stripe"]["api_key"] + "\n",
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BOTCTL_HOME": str(home.path)},
    )
    real = registry.find_action
    connector, spec = real(WRITE)
    recovered: list[int] = []

    async def vendor_call(ctx):
        # The vendor has the write; meanwhile this process is taken for gone (as a node stalled past the
        # lapse is): a recoverer records it unknown, a second one racing it with the same view finds it done.
        with Session(home) as other, monkeypatch.context() as m:
            m.setattr(intents, "_gone", lambda owner: True)
            m.setattr(intents, "owner", lambda: "recoverer:1:ffff")
            stale = intents.abandoned(other)
            assert [r["request_id"] for r in stale] == [ctx.request_id]
            recovered.append(await intents.recover(other))
            m.setattr(intents, "abandoned", lambda app: stale)
            recovered.append(await intents.recover(other))
        if isinstance(vendor_result, ActionError):
            raise vendor_result
        return vendor_result

    monkeypatch.setattr(
        registry,
        "find_action",
        lambda name: (connector, replace(spec, handler=vendor_call)) if name == WRITE else real(name),
    )
    visitor = Visitor(sub="u-ada", email="ada@example.com", name="Ada")
    with Session(home) as app:
        try:
            answer = asyncio.run(
                run_action(
                    app,
                    "acme",
                    WRITE,
                    visitor=visitor,
                    params={"subscription_id": "sub_123"},
                    request_id="req_stalled0001",
                )
            )
        except ActionError as exc:
            answer = exc
        left = _rows(app)
    assert recovered == [1, 0]  # the second recoverer's record was fenced: the row was no longer as it saw it
    assert left == []
    out = subprocess.run(
        [sys.executable, "-m", "botctl", "audit", "--json", "--request-id", "req_stalled0001"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BOTCTL_HOME": str(home.path)},
    )
    return answer, [json.loads(x) for x in out.stdout.splitlines()]


def test_a_stalled_writers_outcome_after_its_write_was_recovered_is_recorded_late(home, sandbox, monkeypatch):
    """The fence: the write's outcome record is conditional on its intent still pending. Recorded `unknown`
    meanwhile by another process, the real outcome becomes `action.outcome_late` (never a second
    `action.run`), naming the record it resolves; the caller gets the real result."""
    answer, recs = _stalled_write(home, sandbox, monkeypatch, {"id": "sub_123", "cancel_at_period_end": True})
    assert answer["ok"] is True and answer["result"] == {"id": "sub_123", "cancel_at_period_end": True}
    got = [(r["event"], r["outcome"], r["reason"]) for r in recs]
    assert got == [
        ("action.started", "pending", None),
        ("action.run", "unknown", "interrupted"),
        ("action.outcome_late", "ok", None),
    ]
    unknown, late = recs[1], recs[2]
    assert late["detail"]["resolves"]["seq"] == unknown["seq"]
    assert late["detail"]["resolves"]["outcome"] == "unknown"
    assert late["detail"]["pending_id"] == unknown["detail"]["pending_id"]
    assert "already on record as unknown" in late["detail"]["late"]
    assert late["action"] == WRITE and late["actor"]["email"] == "ada@example.com"
    # `botctl audit --outcome unknown` shows the unknown, resolved late, and the late record that resolves it.
    env = {**os.environ, "BOTCTL_HOME": str(home.path)}
    shown = subprocess.run(
        [sys.executable, "-m", "botctl", "audit", "--outcome", "unknown", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.splitlines()
    shown = [json.loads(x) for x in shown]
    assert [r["seq"] for r in shown] == [unknown["seq"], late["seq"]]
    assert shown[0]["resolved_late"]["seq"] == late["seq"] and shown[1]["resolves"]["seq"] == unknown["seq"]
    table = subprocess.run(
        [sys.executable, "-m", "botctl", "audit", "--outcome", "unknown"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    assert f"interrupted (late: ok #{late['seq']})" in table, table
    verify = subprocess.run([sys.executable, "-m", "botctl", "audit", "verify"], capture_output=True, env=env)
    assert verify.returncode == 0


def test_a_stalled_writers_late_failure_is_recorded_late_and_raised(home, sandbox, monkeypatch):
    from botctl.connectors.base import ActionError

    refused = ActionError("upstream_error", "Stripe answered 500.", upstream_status=500)
    answer, recs = _stalled_write(home, sandbox, monkeypatch, refused)
    assert isinstance(answer, ActionError) and answer.code == "upstream_error"
    got = [(r["event"], r["outcome"], r["reason"]) for r in recs]
    assert got == [
        ("action.started", "pending", None),
        ("action.run", "unknown", "interrupted"),
        ("action.outcome_late", "error", "upstream_error"),
    ]
