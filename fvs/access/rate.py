"""Per-permit rate limits: a token bucket per permit, in this server process.

A permit may carry a rate (Verify calls per second) and a burst: the bucket holds at most
``burst`` calls and refills at ``rate`` a second; a call that finds it empty is refused with
RATE_LIMITED and told when the next call will fit (google.rpc.RetryInfo). Refused calls take
nothing from the bucket.

:class:`RateLimiter` keeps the buckets in the process's memory; :class:`SharedRateLimiter`
keeps them in a small file mapped by every process of one ``fvs serve --processes N`` group
(a lock on the file around each take), so the group as a whole allows the permit's rate, not N
times it: dividing the rate by N would not do, since a client's connection stays with one
process. Separate servers (other hosts, or a plain ``--reuse-port`` beside another server)
each keep their own buckets and allow the rate each. State is lost on restart (a fresh, full
bucket).
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Limiter(Protocol):
    def take(self, key: int, rate_per_s: float, burst: int) -> float:
        """Take one call from ``key``'s bucket: 0.0 when allowed, else the seconds until one
        call fits."""
        ...


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


_SLOT = struct.Struct("<qdd")  # permit id + 1 (0: free), tokens, at (CLOCK_MONOTONIC)
SHARED_SLOTS = 16384  # permits with a rate one group can track (384 KiB)


class SharedRateLimiter:
    """:class:`RateLimiter`'s buckets in a file shared by the processes of one group (an
    open-addressed table; ``time.monotonic`` is the machine's clock, the same in every
    process). Create the file once with :meth:`create`, before the processes open it."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, SHARED_SLOTS * _SLOT.size)
        self._lock = threading.Lock()  # flock is per open file: threads take turns first
        self._spill = RateLimiter(clock)  # a full table: buckets of this process only
        self._warned = False

    @staticmethod
    def create(path: Path) -> None:
        """A new, empty table (0600)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SHARED_SLOTS * _SLOT.size)
        finally:
            os.close(fd)

    def take(self, key: int, rate_per_s: float, burst: int) -> float:
        """As :meth:`RateLimiter.take`, for the whole group."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                now = self._clock()
                slot = self._slot(key + 1)
                if slot is None:
                    if not self._warned:
                        log.warning("rate limits: shared table full; per-process buckets")
                        self._warned = True
                    return self._spill.take(key, rate_per_s, burst)
                offset = slot * _SLOT.size
                stored, tokens, at = _SLOT.unpack_from(self._map, offset)
                if stored == 0:
                    tokens, at = float(burst), now
                tokens = min(float(burst), tokens + max(0.0, now - at) * rate_per_s)
                wait = 0.0
                if tokens >= 1.0:
                    tokens -= 1.0
                else:
                    wait = (1.0 - tokens) / rate_per_s
                _SLOT.pack_into(self._map, offset, key + 1, tokens, now)
                return wait
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, stored_key: int) -> int | None:
        start = (stored_key * 0x9E3779B1) % SHARED_SLOTS
        for probe in range(SHARED_SLOTS):
            slot = (start + probe) % SHARED_SLOTS
            (found,) = struct.unpack_from("<q", self._map, slot * _SLOT.size)
            if found in (0, stored_key):
                return slot
        return None

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
