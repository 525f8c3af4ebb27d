"""What the lower layers report, and who listens.

The pipeline, the service, the gate and the audit trail call the functions here (stage
timings, embedder batch sizes, admission waits, component health); with no sink installed each
call costs one check of an empty tuple. Sinks (Prometheus metrics, tracing) are installed by
the server at start and removed at stop. Other backends (PostgreSQL, the audit trail's own
checks) report their health through ``health(component, ok)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

# Stage names, in pipeline order; the metrics and the dashboard use exactly these.
STAGES = (
    "decode",
    "detect",
    "align",
    "quality",
    "embed",
    "match",
    "gate",
    "audit_append",
    "audit_flush",
    "store",
    "dedup",  # the 1:N duplicate search at enrolment (issue 9)
)
COMPONENTS = ("model", "store", "audit")


class Sink(Protocol):
    def stage(self, name: str, seconds: float) -> None: ...
    def batch(self, size: int) -> None: ...
    def admission_wait(self, seconds: float) -> None: ...
    def health(self, component: str, ok: bool) -> None: ...


_sinks: tuple[Sink, ...] = ()


def install(sink: Sink) -> None:
    global _sinks  # noqa: PLW0603 - one process-wide list, replaced whole (thread-safe reads)
    _sinks = (*_sinks, sink)


def uninstall(sink: Sink) -> None:
    global _sinks  # noqa: PLW0603
    _sinks = tuple(s for s in _sinks if s is not sink)


def active() -> bool:
    return bool(_sinks)


def stage(name: str, seconds: float) -> None:
    """``name`` (one of STAGES) took ``seconds``, ending now."""
    for sink in _sinks:
        sink.stage(name, seconds)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Report the time the block took as stage ``name`` (also when it raises)."""
    if not _sinks:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        stage(name, time.perf_counter() - start)


def batch(size: int) -> None:
    """The embedder ran a batch of ``size`` crops."""
    for sink in _sinks:
        sink.batch(size)


def admission_wait(seconds: float) -> None:
    """An admitted call waited ``seconds`` for a worker."""
    for sink in _sinks:
        sink.admission_wait(seconds)


def health(component: str, ok: bool) -> None:
    """``component`` (model, store, audit, or another backend's name) is healthy or not."""
    for sink in _sinks:
        sink.health(component, ok)
