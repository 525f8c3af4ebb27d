"""Per-permit rate limits: a token bucket per permit, in this server process.

A permit may carry a rate (Verify calls per second) and a burst: the bucket holds at most
``burst`` calls and refills at ``rate`` a second; a call that finds it empty is refused with
RATE_LIMITED and told when the next call will fit (google.rpc.RetryInfo). Refused calls take
nothing from the bucket. Buckets live in memory, so N processes sharing a port (--reuse-port)
allow N times the rate between them; state is lost on restart (a fresh, full bucket).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: int, rate_per_s: float, burst: int) -> float:
        """Take one call from ``key``'s bucket: 0.0 when allowed, else the seconds until one
        call fits."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - at) * rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate_per_s
