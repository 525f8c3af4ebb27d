"""Prometheus metrics of one server, on a registry of their own, served by their own HTTP
listener (``--metrics-address``). Labels carry the method, the gRPC code, the FVS reason, the
stage, and the caller's agency code (capped: past ``max_agencies`` distinct codes, "other");
never a citizen ID, a request id or anything else unbounded.

Names (the dashboard and the alert rules under deploy/ use exactly these):

- ``fvs_calls_total{method,code,reason,agency}``: finished calls.
- ``fvs_refusals_total{reason,agency}``: calls refused with an FVS reason.
- ``fvs_call_duration_seconds{method}``: a call's time in the server (histogram).
- ``fvs_calls_in_flight``: calls being served now.
- ``fvs_stage_duration_seconds{stage}``: per-stage time (decode ... store; histogram).
- ``fvs_embed_batch_size``: crops per embedder run (histogram).
- ``fvs_admission_pending`` / ``fvs_admission_wait_seconds``: calls admitted and not yet
  finished; time an admitted call waited for a worker (histogram).
- ``fvs_template_index_size``: templates in the in-memory index.
- ``fvs_model_info{pack,model_id,providers,calibration}``: the model being served.
- ``fvs_component_healthy{component}``: 1 healthy, 0 not (model, store, audit, ...).
- ``fvs_serving``: 1 while the health service says SERVING.
- ``fvs_process_threads`` and the standard ``process_*`` metrics (RSS, open fds, CPU).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

from fvs.observability.context import CallContext
from fvs.observability.hooks import COMPONENTS, STAGES

log = logging.getLogger(__name__)

OTHER_AGENCY = "other"
NO_AGENCY = "none"  # calls refused before the caller's agency was known
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class AgencyLabels:
    """Bounded label values for agency codes: the first ``limit`` codes seen keep their own
    label, later ones share "other"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, agency: str) -> str:
        if not agency:
            return NO_AGENCY
        if agency in self._seen:
            return agency
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(agency)
                return agency
        return OTHER_AGENCY


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) -> (host, port); raises ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address {address!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class Metrics:
    """The server's metrics; a ``hooks.Sink`` for the stage timings and health reports."""

    def __init__(self, max_agencies: int = 100) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.agency = AgencyLabels(max_agencies)
        self.calls = Counter(
            "fvs_calls",
            "Finished calls by method, gRPC code, FVS reason and agency.",
            ["method", "code", "reason", "agency"],
            registry=r,
        )
        self.refusals = Counter(
            "fvs_refusals",
            "Calls refused, by FVS reason and agency.",
            ["reason", "agency"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "fvs_call_duration_seconds",
            "Time a call spent in the server, by method.",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("fvs_calls_in_flight", "Calls being served now.", registry=r)
        self.stage_seconds = Histogram(
            "fvs_stage_duration_seconds",
            "Time of one stage of a call.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._stages = {name: self.stage_seconds.labels(name) for name in STAGES}
        self.batch_size = Histogram(
            "fvs_embed_batch_size", "Crops per embedder run.", buckets=BATCH_BUCKETS, registry=r
        )
        self.pending = Gauge(
            "fvs_admission_pending", "Calls admitted (running or waiting for a worker).", registry=r
        )
        self.wait_seconds = Histogram(
            "fvs_admission_wait_seconds",
            "Time an admitted call waited for a worker.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.index_size = Gauge(
            "fvs_template_index_size", "Templates in the in-memory index.", registry=r
        )
        self.model = Info("fvs_model", "The model pack being served.", registry=r)
        self.healthy = Gauge(
            "fvs_component_healthy",
            "1 when the component is healthy, 0 when not.",
            ["component"],
            registry=r,
        )
        for component in COMPONENTS:
            self.healthy.labels(component).set(0 if component == "model" else 1)
        self.serving = Gauge("fvs_serving", "1 while health says SERVING.", registry=r)
        threads = Gauge("fvs_process_threads", "Threads of the server process.", registry=r)
        threads.set_function(threading.active_count)
        ProcessCollector(registry=r)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # hooks.Sink
    def stage(self, name: str, seconds: float) -> None:
        histogram = self._stages.get(name)
        (histogram or self.stage_seconds.labels(name)).observe(seconds)

    def batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def admission_wait(self, seconds: float) -> None:
        self.wait_seconds.observe(seconds)

    def health(self, component: str, ok: bool) -> None:
        self.healthy.labels(component).set(1 if ok else 0)

    # the server's own reports
    def call_finished(self, call: CallContext, seconds: float) -> None:
        agency = self.agency(call.agency)
        self.calls.labels(call.method, call.code, call.reason, agency).inc()
        if call.reason:
            self.refusals.labels(call.reason, agency).inc()
        self.call_seconds.labels(call.method).observe(seconds)

    def set_model(self, pack: str, model_id: str, providers: list[str], calibration: str) -> None:
        self.model.info(
            {
                "pack": pack,
                "model_id": model_id,
                "providers": ",".join(providers),
                "calibration": calibration or "none",
            }
        )
        self.health("model", True)

    def watch(self, pending: Callable[[], float], index_size: Callable[[], float]) -> None:
        self.pending.set_function(pending)
        self.index_size.set_function(index_size)

    def text(self) -> bytes:
        """The exposition text (what a scrape returns)."""
        return generate_latest(self.registry)

    def serve(self, address: str) -> int:
        """Start the HTTP listener on HOST:PORT (port 0 picks one); returns the port."""
        host, port = split_address(address)
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        bound = int(self._server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
