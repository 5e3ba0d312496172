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
