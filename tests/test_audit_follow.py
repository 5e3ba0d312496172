"""`botctl audit -f` prints every record exactly once, in order, however writes interleave with its start.

The follower is a real `botctl audit -f` process whose reading connection lets another connection append a
record (through the project's own audit writer, `Session.audit`) just before each of its first statements:
between the backlog's read and anything else it reads, at every point, deterministically. On both backends.
"""

from __future__ import annotations

import inspect
import json
import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from botctl.session import Session

# Records appended by the interleaving connection: one before each of the follower's first statements.
WRITES = 6


class Interleaved:
    """A reading connection: before each of its first `left` statements, `writer` (a Session) appends."""

    def __init__(self, conn, writer, left: list[int]) -> None:
        self._conn, self._writer, self._left = conn, writer, left

    def execute(self, *args, **kwargs):
        if self._left[0] > 0:
            self._left[0] -= 1
            self._writer.audit("test.interleaved", detail={"left": self._left[0]})
        return self._conn.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def interleave(store, writer, writes: int) -> None:
    """Every reader `store` opens from now on is `Interleaved`, sharing one budget of `writes` records."""
    left, opened = [writes], store.open_audit_reader

    def open_audit_reader(home):
        conn = opened(home)
        return None if conn is None else Interleaved(conn, writer, left)

    store.open_audit_reader = open_audit_reader


INTERLEAVED_FOLLOW = (
    inspect.getsource(Interleaved)
    + inspect.getsource(interleave)
    + """
import sys
from botctl import store
from botctl.cli.main import run
from botctl.home import Home
from botctl.session import Session

interleave(store, Session(Home.resolve(sys.argv[1])), int(sys.argv[2]))
run(["audit", "-f", "--json", *sys.argv[3:]])
"""
)


class Lines:
    """The follower's stdout, a line at a time, with a deadline (a lost record must fail, not hang)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._q.put(line)
        self._q.put(None)

    def next(self, timeout: float = 30) -> dict:
        line = self._q.get(timeout=timeout)
        assert line is not None, "the follower ended"
        return json.loads(line)


def _follow_interleaved(home, *flags: str) -> None:
    """Start the follower with the interleaving writer, read until the writer's last record, then append one
    more: every record from the first printed on appears once, in seq order, the last one included."""
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERLEAVED_FOLLOW, str(home.path), str(WRITES), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    lines = Lines(proc)
    try:
        seen = [lines.next()]
        while not (seen[-1]["event"] == "test.interleaved" and seen[-1]["detail"]["left"] == 0):
            seen.append(lines.next())
        with Session(home) as app:
            end = app.audit("test.interleaved", detail={"left": -1})["seq"]
        seen.append(lines.next())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 130, proc.stderr.read()
    seqs = [r["seq"] for r in seen]
    assert seqs == list(range(seqs[0], end + 1)), seqs  # none lost, none twice, in order
    written = [r["detail"]["left"] for r in seen if r["event"] == "test.interleaved"]
    assert written[-1] == -1 and written[-2] == 0, written


def _init(home, cli, *args: str) -> None:
    assert cli("init", *args).code == 0
    assert cli("workspace", "create", "acme").code == 0


def test_follow_loses_and_repeats_no_record_written_as_it_starts(home, cli):
    _init(home, cli)
    _follow_interleaved(home, "-n", "3")


def test_filtered_follow_loses_and_repeats_no_record_written_as_it_starts(home, cli):
    _init(home, cli)
    _follow_interleaved(home, "-n", "2", "--event", "test.interleaved")


@pytest.mark.parametrize("flags", [("-n", "3"), ("-n", "2", "--event", "test.interleaved")])
def test_follow_on_postgresql_loses_and_repeats_no_record(home, cli, pg_url, flags):
    _init(home, cli, "--database", pg_url)
    _follow_interleaved(home, *flags)


def test_console_timeline_and_its_live_rows_lose_and_repeat_no_record(home, cli, monkeypatch):
    """The console's timeline, then its polls for newer rows (`/api/records?after=`), the same way."""
    from botctl import store
    from botctl.console import data

    _init(home, cli)
    with Session(home) as app:
        monkeypatch.setattr(store, "open_audit_reader", store.open_audit_reader)  # undone after the test
        interleave(store, app, WRITES)
        q = data.parse_query({"n": "3"})
        rows, after = data.timeline(home, q)
        seqs = [r["seq"] for r in reversed(rows)]
        for _ in range(WRITES + 1):
            live, after = data.newer(home, q, after)
            seqs += [r["seq"] for r in live]
        end = app.audit("test.interleaved", detail={"left": -1})["seq"]
        live, after = data.newer(home, q, after)
        seqs += [r["seq"] for r in live]
    assert seqs == list(range(seqs[0], end + 1)), seqs
