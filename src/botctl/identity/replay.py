"""The jti replay cache: each accepted `jti` refused a second time until its token expires.

In the provider's memory on a SQLite home (one machine); in PostgreSQL (`SharedReplay`, table
`identity_jti`) on a PostgreSQL home, so a token accepted by one node is refused as a replay by every other.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REPLAY_MAX_PER_WORKSPACE = 100_000


class ReplayCache:
    """The `jti`s this process has accepted, per workspace, each kept until its token expires (+ leeway).

    In memory: a restart forgets it (a token from before the restart can be used once more until it
    expires). A workspace holding `max_per_workspace` unexpired ids refuses new tokens
    (`replay_cache_full`) rather than forget one that could then be replayed.
    """

    def __init__(
        self, max_per_workspace: int = REPLAY_MAX_PER_WORKSPACE, clock: Callable[[], float] = time.time
    ) -> None:
        import threading

        self.max = max_per_workspace
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, float]] = {}
        self._expiry: dict[str, list[tuple[float, str]]] = {}

    def check_and_add(self, ws_id: str, jti: str, until: float) -> str | None:
        """None if `jti` is new here (and now remembered), else the refusal reason."""
        import heapq

        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(ws_id, {})
            heap = self._expiry.setdefault(ws_id, [])
            while heap and heap[0][0] <= now:
                t, old = heapq.heappop(heap)
                if seen.get(old) == t:
                    del seen[old]
            if jti in seen:
                return "replayed"
            if len(seen) >= self.max:
                return "replay_cache_full"
            seen[jti] = until
            heapq.heappush(heap, (until, jti))
            return None


class SharedReplay:
    """The replay cache in PostgreSQL, shared by every node: one atomic upsert per token (a row whose token
    has expired may be taken again; a live one may not). Expired rows are pruned at most once a minute per
    process. No per-workspace cap: the rows are on disk, bounded by the tokens' lifetimes."""

    PRUNE_EVERY_S = 60.0
    _pruned = 0.0  # per process: when expired rows were last deleted

    def __init__(self, conn, clock: Callable[[], float] = time.time) -> None:  # noqa: ANN001 - a PgConnection
        self.conn = conn
        self.clock = clock

    def check_and_add(self, ws_id: str, jti: str, until: float) -> str | None:
        now = self.clock()
        if now - SharedReplay._pruned > self.PRUNE_EVERY_S:
            SharedReplay._pruned = now
            self.conn.execute("DELETE FROM identity_jti WHERE expires_at < ?", (now,))
        cur = self.conn.execute(
            "INSERT INTO identity_jti (workspace_id, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT (workspace_id, jti) "
            "DO UPDATE SET expires_at = excluded.expires_at WHERE identity_jti.expires_at < ?",
            (ws_id, jti, until, now),
        )
        return None if cur.rowcount == 1 else "replayed"


_REPLAY: ReplayCache | None = None


def replay_cache() -> ReplayCache:
    global _REPLAY
    if _REPLAY is None:
        _REPLAY = ReplayCache()
    return _REPLAY
