"""Knowledge answers off the event loop: one thread of the provider, with its own connection to the vault.

A knowledge answer is CPU work — the question's embedding, matrix products over the workspace's
vectors, FTS5 — a few milliseconds on a small help center and tens on 10,000 passages. Run on the event
loop it would hold every other request for that long: an action waiting on its vendor, a health check,
the heartbeat. Here the lookup runs on one worker thread (onnxruntime, numpy and SQLite release the
GIL, so it uses the second core while the loop goes on), through a connection that no other thread
touches (a second SQLite connection in WAL mode reads beside the loop's; on PostgreSQL a fourth
connection per node). One thread: answers queue behind each other, never more than one core's worth;
the optional LLM phrasing is awaited on the loop as before.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

THREAD_NAME = "botctl-answers"


class _Worker(ThreadPoolExecutor):
    """One thread that adds up the time it spends working (`busy`): over a minute, a busy time near 60 s
    means answers queue (the metrics' botctl_knowledge_answer_busy_seconds_total)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix=THREAD_NAME)
        self.busy = 0.0
        self.done = 0
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        def timed() -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.busy += time.perf_counter() - started
                    self.done += 1

        return super().submit(timed)


class Answers:
    """The provider's knowledge answers, computed on THREAD_NAME with the connection opened for it."""

    def __init__(self, home: Any) -> None:
        from botctl import store

        # Opened here (at start: a database that does not answer fails the start, not a visitor's
        # question), used only on the worker thread from then on. Already migrated by the provider's
        # own connection: a newer schema is still refused.
        self._conn = store.open_vault(home, migrate_to_latest=False)
        self._worker = _Worker()

    @property
    def connection(self) -> Any:
        """The thread's connection (the heartbeat checks it is not broken, as it does the provider's own)."""
        return self._conn

    async def answer(self, ws: Any, question: str, actions: list[dict[str, Any]] | None) -> dict[str, Any]:
        from botctl import knowledge

        return await knowledge.answer_async(
            self._conn, ws, question, available_actions=actions, executor=self._worker
        )

    def status(self) -> dict[str, Any]:
        """For /v1/status: answers looked up, and the seconds the thread spent on them."""
        return {"answered": self._worker.done, "busy_seconds": round(self._worker.busy, 6)}

    def close(self) -> None:
        self._worker.shutdown(wait=True)  # a lookup in progress finishes before its connection closes
        self._conn.close()
