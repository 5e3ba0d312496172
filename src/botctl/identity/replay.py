"""The jti replay cache: each accepted `jti` refused a second time until its token expires (in memory)."""

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

    def __init__(self, max_per_workspace: int = REPLAY_MAX_PER_WORKSPACE,
                 clock: Callable[[], float] = time.time) -> None:
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


_REPLAY: ReplayCache | None = None


def replay_cache() -> ReplayCache:
    global _REPLAY
    if _REPLAY is None:
        _REPLAY = ReplayCache()
    return _REPLAY
