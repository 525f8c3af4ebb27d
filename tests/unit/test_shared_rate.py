"""The rate limit of a group of processes (fvs.access.rate.SharedRateLimiter): the permit's
rate for the group as a whole, not N times it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from fvs.access.rate import SharedRateLimiter


def test_a_shared_bucket_refills_at_the_rate_up_to_the_burst(tmp_path: Path) -> None:
    path = tmp_path / "rates"
    SharedRateLimiter.create(path)
    now = [100.0]
    first = SharedRateLimiter(path, clock=lambda: now[0])
    second = SharedRateLimiter(path, clock=lambda: now[0])  # another process's view
    assert [first.take(1, 2.0, 3) for _ in range(2)] == [0.0, 0.0]
    assert second.take(1, 2.0, 3) == 0.0  # the same bucket: the third call of the burst
    assert first.take(1, 2.0, 3) == pytest.approx(0.5)
    assert second.take(2, 2.0, 3) == 0.0  # buckets are per permit
    now[0] += 0.5
    assert second.take(1, 2.0, 3) == 0.0
    now[0] += 100
    assert [first.take(1, 2.0, 3) for _ in range(4)][-1] > 0  # refills to the burst only
    first.close()
    second.close()


def _take_many(path: str, calls: int, allowed: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = SharedRateLimiter(Path(path))
    allowed.put(sum(limiter.take(7, 0.001, 10) == 0.0 for _ in range(calls)))
    limiter.close()


def test_two_processes_share_one_bucket(tmp_path: Path) -> None:
    path = tmp_path / "rates"
    SharedRateLimiter.create(path)
    ctx = multiprocessing.get_context("spawn")
    allowed: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_take_many, args=(str(path), 200, allowed)) for _ in range(2)]
    for p in procs:
        p.start()
    counts = [allowed.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(counts) == 10  # the burst, once, between both processes (not 20)
