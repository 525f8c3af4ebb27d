"""Admission: which calls wait for a worker and which are refused at once.

Transport-neutral arithmetic, used by the gRPC layer on its event loop (one thread), so plain
fields suffice. The rule a gateway engineer can act on:

* A call that finds a worker free is always admitted.
* Otherwise it is admitted when it can still be answered in time: the expected wait for a
  worker (the calls admitted ahead of it beyond the workers, times the measured service time
  per worker) plus its own service time fits its deadline (the caller's gRPC deadline) and,
  with ``HEADROOM`` service times to spare for the estimate's error, fits the server's queue
  bound (``max_wait_s``, for callers without a deadline and as a cap for all); and never
  beyond ``capacity`` admitted calls.
* The queue bound is not applied while fewer than ``GUARANTEED_PER_WORKER`` calls per worker
  are admitted: a gateway keeping up to that many calls in flight per server worker is never
  refused however slow the machine is that day (only a deadline it cannot meet refuses it).
* A refused call gets ``OVERLOADED`` (RESOURCE_EXHAUSTED) at once, with a retry delay: the
  time the queue needs to drain back within the bound, at least one service time.
* A call admitted on the strength of the estimate alone (beyond the guaranteed calls) is
  ``bounded``: if the queue turns out slower than estimated and, when a worker reaches it,
  its wait plus a service time passes the bound, it is refused then (``OVERLOADED``, never
  run) rather than answered late (``expired_bound``). This is the only refusal after waiting.

So closed-loop callers (each waiting for its answer before sending the next call) are never
refused while their number times the service time per worker fits the bound, and under
open-loop overload accepted calls are answered within ``max_wait_s`` (measured on 2 cores,
4x overload, 1 s bound: accepted p99 976-1,023 ms; aiming at the bound itself and refusing
only after a whole bound of waiting gave 1,166-1,192 ms in the same run;
docs/benchmarks/overload_cpu-x4.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Weight of the newest service time in the moving average.
_EWMA = 0.1
# Service times kept free below the queue bound when admitting on the estimate: the estimate
# errs by about a service time either way, and the bound is a promise for accepted calls.
HEADROOM = 1.0
# Admitted calls per worker below which the queue bound is not applied.
GUARANTEED_PER_WORKER = 4


@dataclass(frozen=True)
class Decision:
    admitted: bool
    expected_wait_s: float
    retry_after_s: float = 0.0
    why: str = ""
    bounded: bool = False  # admitted on the estimate alone: the queue bound holds it


class Admission:
    def __init__(self, capacity: int, workers: int = 1, max_wait_s: float = math.inf) -> None:
        self.capacity = max(1, capacity)
        self.workers = max(1, workers)
        self.max_wait_s = max_wait_s
        self.pending = 0  # admitted and not yet finished (running or waiting)
        self.refused = 0
        self.service_s = 0.0  # moving average of a call's time in a worker

    def expected_wait_s(self) -> float:
        """Expected wait for a worker of a call arriving now."""
        waiting = self.pending - self.workers + 1
        return max(0, waiting) * self.service_s / self.workers

    def decide(self, time_remaining_s: float | None = None) -> Decision:
        """Admit (and count) the call, or say why not. ``time_remaining_s``: the caller's
        deadline, None when it set none."""
        wait = self.expected_wait_s()
        if self.pending >= self.capacity:
            return self._refuse(wait, f"{self.pending} calls admitted (the limit)")
        bounded = False
        if self.pending >= self.workers:  # no worker free: must it wait too long?
            bounded = self.pending >= GUARANTEED_PER_WORKER * self.workers
            if bounded and wait + (1 + HEADROOM) * self.service_s > self.max_wait_s:
                return self._refuse(
                    wait,
                    f"expected wait {1000 * wait:.0f} ms + service {1000 * self.service_s:.0f}"
                    f" ms (and {HEADROOM:g} more for the estimate's error) over the queue bound"
                    f" of {1000 * self.max_wait_s:.0f} ms",
                )
            if time_remaining_s is not None and wait + self.service_s > time_remaining_s:
                return self._refuse(
                    wait,
                    f"expected wait {1000 * wait:.0f} ms + service {1000 * self.service_s:.0f}"
                    f" ms exceeds the call's deadline ({1000 * time_remaining_s:.0f} ms left)",
                )
        self.pending += 1
        return Decision(True, wait, bounded=bounded and math.isfinite(self.max_wait_s))

    def _refuse(self, wait: float, why: str) -> Decision:
        self.refused += 1
        bound = self.max_wait_s if math.isfinite(self.max_wait_s) else 0.0
        retry = max(self.service_s, wait + (1 + HEADROOM) * self.service_s - bound, 0.01)
        return Decision(False, wait, retry_after_s=retry, why=why)

    def expired_bound(self, decision: Decision, waited_s: float) -> bool:
        """True when a ``bounded`` call reaches a worker too late to be answered within the
        queue bound (the estimate was too low): refuse it rather than answer it late.

        Admission aims the answer (wait + service) at ``HEADROOM`` service times before the
        bound; this backstop refuses only what would pass the bound itself, so the estimate's
        noise rarely trips it (measured: 4 calls per 10 s of 4x overload, against about 200
        answered; with admission aimed at the bound itself and no slack, half the calls
        admitted at the edge were refused after waiting)."""
        return decision.bounded and waited_s + self.service_s > self.max_wait_s

    def late_retry_s(self) -> float:
        """Retry delay for a call refused by ``expired_bound``: one service time."""
        return max(self.service_s, 0.01)

    def leave(self, service_s: float | None = None) -> None:
        """A call admitted by ``decide`` finished; ``service_s`` is its time in a worker
        (None when it never ran)."""
        self.pending -= 1
        if service_s is not None:
            self.service_s = (
                service_s
                if self.service_s == 0
                else (1 - _EWMA) * self.service_s + _EWMA * service_s
            )
