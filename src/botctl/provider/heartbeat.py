"""The node's heartbeat, written by its running provider on a PostgreSQL home (botctl/nodes.py).

Every `nodes.HEARTBEAT_S` the provider upserts its node's row on a connection of its own (a beat never
waits behind the audit chain's write lock). A beat that fails (PostgreSQL unreachable) is logged and
retried at the next tick: the node then looks lapsed to the others, which is what it is.

A connection to PostgreSQL, once lost, is never reconnected by psycopg: should the provider's own
connections break (the server restarted, a network cut), every request would fail closed forever. So
at each tick the provider checks them and, if one is broken, stops itself (SIGTERM) for the supervisor to
start a fresh provider: it connects anew once PostgreSQL answers again (starts that fail back off, as any
provider start that fails does). Writes in flight are what a killed provider leaves: pending rows,
recorded at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from botctl import __version__, nodes, store

log = logging.getLogger("botctl.provider")


class Heartbeat:
    def __init__(self, app: Any, others: tuple[Any, ...] = ()) -> None:
        self.app = app
        self.others = others  # the provider's other connections of its own (its answers thread's)
        self.name: str = app.node
        self.started_at = store.now_iso()
        self._conn = None
        self.beats = 0
        self.failures = 0

    def _beat(self) -> None:
        if self._conn is None:
            self._conn = store.open_vault(self.app.home, migrate_to_latest=False)
        try:
            nodes.beat(self._conn, self.name, __version__, self.started_at)
        except Exception:
            self._close()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: S110 - already gone
                pass
            self._conn = None

    def beat_now(self) -> None:
        """One beat, synchronously (at start, before serving: the node is listed as soon as it serves)."""
        self._beat()
        self.beats += 1

    def connection_lost(self) -> bool:
        """One of the provider's own PostgreSQL connections (requests', the audit committer's, its answers
        thread's) is broken."""
        conns = [self.app.vault.conn, *self.others]
        committer = getattr(self.app, "_committer", None)
        writer = getattr(committer, "_writer", None)
        conns += [getattr(writer, name, None) for name in ("_vault", "_conn")]
        return any(getattr(c, "broken", False) is True for c in conns if c is not None)

    async def run(self, after_beat=None) -> None:  # noqa: ANN001 - an async callable, or None
        while True:
            await asyncio.sleep(nodes.HEARTBEAT_S)
            if self.connection_lost():
                log.error(
                    "node %s: the connection to PostgreSQL was lost; stopping for the supervisor to start "
                    "a fresh provider",
                    self.name,
                )
                os.kill(os.getpid(), signal.SIGTERM)
                return
            try:
                await asyncio.to_thread(self._beat)
                self.beats += 1
            except Exception as exc:
                self.failures += 1
                log.warning("node %s: heartbeat not written: %s", self.name, exc)
                continue
            if after_beat is not None:
                try:
                    await after_beat()
                except Exception:
                    log.exception("node %s: after-beat work failed", self.name)

    def close(self) -> None:
        self._close()
