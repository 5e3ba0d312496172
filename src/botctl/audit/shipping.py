"""Shipping: every committed audit record to every sink, with its chain hash, in order, at least once.

The shipper reads audit.db *after* commit (never in the write path: a slow or dead sink cannot block
or drop a local write) from each sink's persisted cursor (`shipstate`), sends a batch, and moves the
cursor only when the batch was delivered; a failure is retried with exponential backoff (1 s doubling
to 5 min, jittered) and the backlog (head − cursor) is what `audit sink list`, doctor and daemon status
report. With the chain key it also checks each batch's MACs and links to what the sink already has, and
after a checked batch appends a signed anchor (`{"anchor": {...}}`) at most every `anchor_every` s.
A log rewritten or truncated under a sink (its last delivered record changed or gone) raises the
`audit.chain_broken` alert (alerting.py).

The daemon's provider runs a `Shipper` thread (woken by each group commit, polling every 2 s for
records other processes wrote); `botctl audit sink flush` runs one pass from the CLI. A file lock keeps
two processes from shipping the same records at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from botctl.audit import destinations, shipstate
from botctl.audit.chain import GENESIS, ChainMac
from botctl.audit.export import iter_rows, record_line
from botctl.audit.shipstate import MAX_BACKOFF_S, audit_rows, backoff, head  # noqa: F401 - shipping.X
from botctl.home import Home

log = logging.getLogger("botctl.audit.shipping")
BATCH = 2000
MIN_GAP_S = 0.5


@contextlib.contextmanager
def shipping_lock(home: Home, *, wait: float = 0.0) -> Iterator[bool]:
    """An exclusive flock on `shipping.lock`: True if this process holds it (else another one ships)."""
    import fcntl
    import os

    home.ensure()
    fd = os.open(home.path / "shipping.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def hash_at(home: Home, seq: int) -> str | None:
    rows = audit_rows(home, "SELECT hash FROM records WHERE seq = ?", (seq,))
    return rows[0][0] if rows else None


def ship_sink(
    home: Home,
    conn,
    sink: shipstate.Sink,
    *,
    key: bytes | None,
    chain_ok: bool,  # noqa: ANN001
    anchor_every: float,
    now: float,
) -> dict[str, Any]:
    """One batch to one sink. Returns {"sink", "sent", "delivered_seq", "error"?}."""
    from botctl.audit import alerting

    cursor, cursor_hash = sink.delivered_seq, sink.delivered_hash
    if cursor > 0:
        found = hash_at(home, cursor)
        if found != cursor_hash:
            head_seq, head_hash = head(home)
            what = (
                f"record {cursor} is gone (the log now ends at {head_seq})"
                if found is None
                else f"record {cursor} no longer has the hash it was shipped with"
            )
            if chain_ok:  # else the head-vs-checkpoint alert already tells of this break
                alerting.chain_broken(
                    conn,
                    f"the audit log was rewritten under sink {sink.name}: {what}",
                    kind="rewritten_under_sink",
                    key=f"sink:{sink.name}:{cursor}:{found}",
                )
            # Ship what the log holds now from the point the two agree on at most: the sink then holds
            # both versions, which is the evidence.
            cursor = min(cursor, head_seq)
            cursor_hash = hash_at(home, cursor) if cursor else None
            shipstate.rewind(conn, sink.name, cursor, cursor_hash)
    import itertools

    source = iter_rows(home, after_seq=cursor)
    try:
        rows = list(itertools.islice(source, BATCH))
    finally:
        source.close()
    if not rows:
        return {"sink": sink.name, "sent": 0, "delivered_seq": cursor}
    checked = key is not None and chain_ok
    if key is not None:
        link = ChainMac(key).link
        prev = (cursor_hash or rows[0][2]) if cursor else GENESIS
        for seq, body, prev_hash, hash_ in rows:
            if prev_hash != prev or link(prev_hash, seq, body.encode("utf-8", "surrogateescape")) != hash_:
                checked = False
                alerting.chain_broken(
                    conn,
                    f"record {seq} does not match its chain hash (found while shipping to sink {sink.name})",
                    kind="mac_mismatch",
                    key=f"mac:{seq}:{hash_}",
                )
                break
            prev = hash_
    lines = [record_line(*r) for r in rows]
    last_seq, last_hash = rows[-1][0], rows[-1][3]
    anchored_at = None
    if checked and (sink.anchored_at is None or now - sink.anchored_at >= anchor_every):
        import json

        from botctl.audit.anchors import sign_anchor

        lines.append(json.dumps({"anchor": sign_anchor(key, last_seq, last_hash)}, separators=(",", ":")))
        anchored_at = now
    try:
        destinations.send(
            sink.kind, sink.target, sink.options, lines, first_seq=rows[0][0], last_seq=last_seq
        )
    except destinations.DeliveryFailed as exc:
        shipstate.failed(conn, "sinks", sink.name, str(exc), now + backoff(sink.failures + 1))
        return {"sink": sink.name, "sent": 0, "delivered_seq": cursor, "error": str(exc)}
    shipstate.delivered(conn, sink.name, last_seq, last_hash, anchored_at=anchored_at)
    return {"sink": sink.name, "sent": len(rows), "delivered_seq": last_seq}


def ship_once(
    home: Home,
    *,
    key: bytes | None = None,
    chain_ok: bool = True,
    force: bool = False,
    anchor_every: float = 60.0,
    wait_lock: float = 0.0,
    check_head: bool = True,
) -> list[dict[str, Any]]:
    """One pass: alerts found in new records, one batch per due sink, due alert webhooks."""
    from botctl.audit import alerting

    with shipping_lock(home, wait=wait_lock) as mine:
        if not mine:
            return []
        conn = shipstate.connect(home)
        try:
            alerting.scan_records(home, conn)
            if key is not None and check_head:
                chain_ok = alerting.check_chain(home, key, conn).get("chain") == "ok" and chain_ok
            now = time.time()
            results = []
            for sink in shipstate.list_sinks(conn):
                if force or sink.next_attempt <= now:
                    try:
                        results.append(
                            ship_sink(
                                home,
                                conn,
                                sink,
                                key=key,
                                chain_ok=chain_ok,
                                anchor_every=anchor_every,
                                now=now,
                            )
                        )
                    except Exception as exc:  # one sink's surprise must not stop the others
                        log.exception("shipping to sink %s failed", sink.name)
                        shipstate.failed(
                            conn, "sinks", sink.name, type(exc).__name__, now + backoff(sink.failures + 1)
                        )
                        results.append({"sink": sink.name, "sent": 0, "error": type(exc).__name__})
            alerting.deliver(conn, force=force)
            shipstate.prune_events(conn)
            return results
        finally:
            conn.close()


def backlog(home: Home) -> list[dict[str, Any]]:
    """Each sink's state for reports: name, destination, delivered_seq, backlog, failures, last_error."""
    path = shipstate.db_path(home)
    if not path.exists():
        return []
    head_seq, _ = head(home)
    conn = shipstate.connect(home)
    try:
        return [
            {
                "name": s.name,
                "kind": s.kind,
                "destination": s.describe(),
                "delivered_seq": s.delivered_seq,
                "backlog": max(0, head_seq - s.delivered_seq),
                "failures": s.failures,
                "last_error": s.last_error,
                "delivered_at": s.delivered_at,
                "next_attempt_in_s": round(max(0.0, s.next_attempt - time.time()), 1) if s.failures else None,
            }
            for s in shipstate.list_sinks(conn)
        ]
    finally:
        conn.close()


class Shipper:
    """The daemon's shipping thread: a pass after each commit (`wake`) and every `poll` seconds."""

    def __init__(
        self,
        home: Home,
        key: bytes | None,
        *,
        poll: float = 2.0,
        anchor_every: float = 60.0,
        verify_every: float = 3600.0,
        chain_state=None,
    ) -> None:  # noqa: ANN001 - () -> dict
        self.home = home
        self._verify_every = verify_every
        self._verified_at = 0.0
        self.last_verify: dict[str, Any] | None = None  # the last whole-chain walk (daemon status shows it)
        self._key = key
        self._poll = poll
        self._anchor_every = anchor_every
        self._chain_state = chain_state
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="botctl-audit-shipper", daemon=True)
        self.passes = 0
        self.errors = 0

    def start(self) -> Shipper:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        checked_at = 0.0
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            # Under load every commit wakes us: at most MIN_GAP_S between passes (the records of the
            # commits meanwhile go in the next batch), so shipping never competes with serving.
            self._stop.wait(MIN_GAP_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                chain_ok = True
                if self._chain_state is not None:
                    chain_ok = self._chain_state().get("chain") == "ok"
                # The head against the checkpoint every `poll` s (the writer checks it before every append).
                check_head = time.monotonic() - checked_at >= self._poll
                if check_head:
                    checked_at = time.monotonic()
                ship_once(
                    self.home,
                    key=self._key,
                    chain_ok=chain_ok,
                    anchor_every=self._anchor_every,
                    check_head=check_head,
                )
                self.passes += 1
                if self._key is not None and time.monotonic() - self._verified_at >= self._verify_every:
                    self._verified_at = time.monotonic()
                    self._walk()
            except Exception:
                self.errors += 1
                log.exception("audit shipping pass failed")

    def _walk(self) -> None:
        """The whole chain, at start and every `verify_every` s: an edited old record under an intact head
        is invisible to the per-write head check, so without this the provider would chain on regardless."""
        from botctl.audit import alerting

        conn = shipstate.connect(self.home)
        try:
            self.last_verify = alerting.verify_walk(self.home, self._key, conn)
        finally:
            conn.close()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
