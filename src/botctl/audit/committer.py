"""GroupCommitter: the daemon's audit writes, one transaction and one fsync per batch of waiting records."""

from __future__ import annotations

from typing import Any

from botctl import store
from botctl.audit.writer import AuditWriter, Guard
from botctl.errors import AuditChainBroken


def _log():  # noqa: ANN202 - logging.Logger, imported only by the daemon's paths
    import logging

    return logging.getLogger("botctl.audit")


class GroupCommitter:
    """Group commit for the daemon: callers from any thread or task submit a record and wait until it is
    durable; one writer thread commits whatever has queued up in one transaction (one fsync per batch).

    Under load many requests share an fsync, so durability costs little throughput; at rest a lone
    record is committed at once (no timer, no added latency).
    """

    def __init__(self, writer: AuditWriter, *, max_batch: int = 500) -> None:
        import queue
        import threading

        self._writer = writer
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_batch = max_batch
        self._closed = False
        self.batches = 0
        self.records = 0
        self.refused = 0  # records refused because the chain's head disagreed with its checkpoint
        self._broken: dict[str, Any] | None = None  # the last refusal's state, until an append succeeds again
        self.on_commit = None  # called (no arguments) after each committed batch: the shipper's wake-up
        self._thread = threading.Thread(target=self._run, name="botctl-audit-writer", daemon=True)
        self._thread.start()

    def chain_state(self) -> dict[str, Any]:
        """What the writer last found: {"chain": "ok" | "broken", "refused", ...the break's sides}."""
        return {**(self._broken or {"chain": "ok"}), "refused": self.refused}

    def submit(self, record: dict[str, Any], guard: Guard | None = None):  # -> Future[dict | None]
        """Queue `record` (under `guard`, run in the batch's transaction: AuditWriter.append_many); the
        future's result is the written record, or None if its guard said no."""
        from concurrent.futures import Future

        if self._closed:
            raise RuntimeError("audit writer is closed")
        fut: Future = Future()
        self._queue.put((record, fut, guard))
        return fut

    def append(self, record: dict[str, Any], *, guard: Guard | None = None) -> dict[str, Any] | None:
        return self.submit(record, guard).result()

    async def append_async(
        self, record: dict[str, Any], *, guard: Guard | None = None
    ) -> dict[str, Any] | None:
        import asyncio

        return await asyncio.wrap_future(self.submit(record, guard))

    def _run(self) -> None:
        import queue

        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                written = self._writer.append_many([r for r, _, _ in batch], guards=[g for _, _, g in batch])
            except BaseException as exc:  # fail closed: every waiter learns the record is not durable
                if isinstance(exc, AuditChainBroken):
                    self._refused(exc, len(batch))
                for _, fut, _ in batch:
                    fut.set_exception(exc)
            else:
                first = next((rec for rec in written if rec is not None), None)
                if self._broken is not None and first is not None:
                    _log().warning(
                        "audit log writable again from record %d (the break was sealed)", first["seq"]
                    )
                    self._broken = None
                self.batches += 1
                self.records += sum(1 for rec in written if rec is not None)
                for (_, fut, _), rec in zip(batch, written, strict=True):
                    fut.set_result(rec)
                if self.on_commit is not None:
                    self.on_commit()
            if stop:
                return

    def _refused(self, exc: AuditChainBroken, n: int) -> None:
        self.refused += n
        if self._broken is None:  # logged once per break, not once per refused record
            self._broken = dict(getattr(exc, "state", {"chain": "broken", "problem": exc.message}))
            self._broken["since"] = store.now_iso()
            _log().error(
                "audit log refuses new records: %s; every audited request fails until "
                "`botctl audit seal-break --reason TEXT` records the break",
                self._broken.get("problem"),
            )

    def close(self) -> None:
        """Commit everything already submitted, then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)
