"""Token buckets, per key (client IP; visitor), in memory, bounded."""

from __future__ import annotations

import time
from collections import OrderedDict


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, *, max_keys: int = 50_000) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 when allowed; otherwise the seconds until a token is available. A rate of 0 means no limit."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:  # bounded memory under a flood of distinct keys
            self._buckets.popitem(last=False)
        return wait
