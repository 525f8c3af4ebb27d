"""Multi-process serving: ``fvs serve --processes N``.

A supervisor (this process) starts N serving processes with ``spawn`` (a fresh interpreter
each: nothing of grpc's or onnxruntime's threads is inherited through a fork). Each child
loads its own model sessions (onnxruntime threads sized so the N children share the cores
instead of each taking them all; thread spinning stays off) and its own template index, then
binds the one address with SO_REUSEPORT, asked for explicitly (the kernel spreads new
connections across the children; a connection stays with the child that accepted it). State
is shared through the store: the template index follows the change log (fvs.store.sync), the
access rules are read on every call, the file audit trail takes a lock per append, and the
per-permit rate limits live in one small shared file (fvs.access.rate.SharedRateLimiter).

Health covers the group: a shared byte per child says STARTING, SERVING, NOT_SERVING,
DRAINING or RESTARTING, and each child's health service reports SERVING only while every child
is SERVING (a child being replaced after a crash does not count: it binds only once loaded,
so no connection reaches it before). The supervisor forwards SIGTERM / SIGINT to every child
(a second one hurries them), each drains its calls and flushes its audit records, and the
supervisor exits once all have.

A child that dies while the group serves is restarted (the others go on serving its share of
new connections meanwhile): a crash of one process, e.g. from one poisonous input, should not
take the host down. A child that dies during start-up (a taken port, a bad model pack) or
more than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S`` stops the whole group with a
log line saying which and why: restarting that would only loop.

Metrics: each child serves its own Prometheus endpoint, child k on the metrics port plus k
(README "Operations"): every metric stays exact (process memory, callbacks) with no shared
files to clean up, at the cost of listing N targets in the scrape configuration.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from fvs.access.rate import SharedRateLimiter
from fvs.config import Settings, default_workers
from fvs.errors import ConfigError, FvsError
from fvs.observability.logs import configure
from fvs.store.db import private_dir

log = logging.getLogger(__name__)

STARTING, SERVING, NOT_SERVING, DRAINING, RESTARTING = range(5)
RUN, STOP, HURRY = range(3)  # what the supervisor asks of every child
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0
RATE_FILE = "run/rate-buckets"
EXIT_UNAVAILABLE = 3  # as fvs.cli.common (the store, the port or the model unavailable)


@dataclass
class GroupMember:
    """What a child knows of its group: its index and everyone's state (shared memory)."""

    index: int
    size: int
    states: Any  # multiprocessing.Array of bytes, one per child
    rate_file: Path
    control: Any  # multiprocessing.Value: the supervisor's request (RUN, STOP, HURRY)

    def publish(self, state: int) -> None:
        self.states[self.index] = state

    def requested(self) -> int:
        """RUN, or STOP (drain and exit), or HURRY (stop at once)."""
        return int(self.control.value)

    def group_serving(self) -> bool:
        """Every child SERVING (one being replaced excepted), and at least one."""
        states = list(self.states)
        return SERVING in states and all(s in (SERVING, RESTARTING) for s in states)


def child_settings(settings: Settings, index: int, cores: int | None = None) -> Settings:
    """A child's settings: the shared port, and threads sized for one of N processes."""
    n = settings.server.processes
    child = settings.model_copy(deep=True)
    child.server.reuse_port = True
    share = max(1, (cores or os.cpu_count() or 1) // n)
    if child.model.intra_op_threads == 0:  # 0: onnxruntime would take every core
        child.model.intra_op_threads = share
    if "workers" not in settings.server.model_fields_set:
        child.server.workers = default_workers(share)
    address = settings.observability.metrics_address
    if address:
        host, _, port = address.rpartition(":")
        if port.isdigit() and int(port) != 0:
            child.observability.metrics_address = f"{host}:{int(port) + index}"
    return child


def _child_main(
    settings: Settings, member: GroupMember, log_level: str, log_format: str
) -> None:  # pragma: no cover - runs in the spawned child (covered by tests/e2e)
    """A serving child: its own process group (a terminal's Ctrl-C reaches the supervisor,
    which forwards it once), stops when the supervisor dies, serves until told to stop."""
    from fvs.api.server import serve  # noqa: PLC0415  (fvs.api.server imports this module)

    os.setpgid(0, 0)
    configure(log_level, log_format)  # type: ignore[arg-type]
    parent = multiprocessing.parent_process()
    if parent is not None:

        def orphaned() -> None:
            wait([parent.sentinel])
            log.error("the supervisor is gone; stopping")
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=orphaned, name="fvs-parent-watch", daemon=True).start()
    log.info("process %d of %d (pid %d)", member.index, member.size, os.getpid())
    try:
        asyncio.run(serve(settings, member))
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        raise SystemExit(EXIT_UNAVAILABLE) from exc


def _prepare_main(
    settings: Settings, result: Any, log_level: str, log_format: str
) -> None:  # pragma: no cover - runs in a spawned process (covered by tests/e2e)
    """Check the configuration and create or migrate the stores and keys; send None, or the
    failure as (kind, message)."""
    from fvs.api.server import (  # noqa: PLC0415  (it imports this module)
        build_parts,
        check_insecure_address,
        server_credentials,
    )

    configure(log_level, log_format)  # type: ignore[arg-type]
    try:
        if settings.access.insecure:
            check_insecure_address(settings.server.address)
        server_credentials(settings.access)
        build_parts(settings).close()
    except ConfigError as exc:
        result.send(("ConfigError", str(exc)))
    except (OSError, FvsError) as exc:
        result.send(("OSError", str(exc)))
    else:
        result.send(None)


class Supervisor:
    def __init__(self, settings: Settings, log_level: str = "INFO", log_format: str = "text"):
        self.settings = settings
        self.n = settings.server.processes
        self.log_level = log_level
        self.log_format = log_format
        self.ctx = multiprocessing.get_context("spawn")
        self.states: Any = self.ctx.Array("b", [STARTING] * self.n, lock=False)
        # Stop requests go through shared memory, not signals: a service manager that signals
        # every process of the unit (systemd's default) and a forwarded signal would count
        # twice, and a second signal means "stop at once".
        self.control: Any = self.ctx.Value("b", RUN, lock=False)
        self.procs: list[Any] = [None] * self.n
        self.ready = [False] * self.n  # reached SERVING at least once
        self.restarts: list[float] = []
        self.stopping = 0  # stop signals received
        self.rate_file = settings.store.data_dir / RATE_FILE

    def _check(self) -> None:
        address = self.settings.server.address
        _, _, port = address.rpartition(":")
        if not port.isdigit() or int(port) == 0:
            raise ConfigError(f"--processes {self.n} needs a fixed port to share (not {address!r})")
        check_shareable(address)
        # The configuration checks, and the stores and keys created (or migrated) once, in a
        # one-shot process: N children doing it at once on a new data directory would race
        # (two template keys, two audit chain keys), and doing it here would load grpc,
        # onnxruntime and OpenCV into the supervisor for nothing (49 MiB instead of 172).
        receiving, sending = self.ctx.Pipe(duplex=False)
        prepare = self.ctx.Process(
            target=_prepare_main,
            args=(self.settings, sending, self.log_level, self.log_format),
            name="fvs-serve-prepare",
        )
        prepare.start()
        sending.close()
        try:
            failure = receiving.recv()
        except EOFError:
            failure = ("OSError", f"the preparing process died ({_how(prepare.exitcode)})")
        prepare.join()
        if failure is not None:
            kind, message = failure
            raise ConfigError(message) if kind == "ConfigError" else OSError(message)

    def _start(self, index: int) -> None:
        member = GroupMember(index, self.n, self.states, self.rate_file, self.control)
        proc = self.ctx.Process(
            target=_child_main,
            args=(
                child_settings(self.settings, index),
                member,
                self.log_level,
                self.log_format,
            ),
            name=f"fvs-serve-{index}",
        )
        proc.start()
        self.procs[index] = proc

    def _signal(self, signum: int, _frame: object) -> None:
        self.stopping += 1
        if self.stopping == 1:
            log.info("%s: stopping %d processes gracefully", signal.Signals(signum).name, self.n)
        else:
            log.warning("second stop signal: stopping at once")
        self.control.value = STOP if self.stopping == 1 else HURRY

    def run(self) -> int:
        """Start the children and supervise them until they have all stopped; the exit code."""
        self._check()
        private_dir(self.rate_file.parent)
        SharedRateLimiter.create(self.rate_file)
        previous = {s: signal.signal(s, self._signal) for s in (signal.SIGTERM, signal.SIGINT)}
        log.info("starting %d processes on %s (SO_REUSEPORT)", self.n, self.settings.server.address)
        code = 0
        try:
            for index in range(self.n):
                self._start(index)
            code = self._supervise()
        finally:
            if self.control.value == RUN:
                self.control.value = STOP
            for proc in self.procs:
                if proc is not None:
                    proc.join(timeout=self.settings.server.grace_s + 30)
                    if proc.is_alive():
                        log.error("process %s did not stop; killing it", proc.pid)
                        proc.kill()
                        proc.join(timeout=5)
            for s, handler in previous.items():
                signal.signal(s, handler)
        log.info("all %d processes stopped", self.n)
        return code

    def _supervise(self) -> int:
        announced = False
        while True:
            live = [p for p in self.procs if p is not None]
            if not live:
                return 0
            wait([p.sentinel for p in live], timeout=0.2)
            for index, state in enumerate(list(self.states)):
                if state == SERVING:
                    self.ready[index] = True
            if not announced and all(self.ready):
                log.info("all %d processes SERVING", self.n)
                announced = True
            for index, proc in enumerate(self.procs):
                if proc is None or proc.is_alive():
                    continue
                proc.join()
                self.procs[index] = None
                exit_code = proc.exitcode
                if self.stopping:
                    continue
                how = _how(exit_code)
                if not self.ready[index]:
                    log.error(
                        "process %d (pid %d) %s while starting; stopping the group",
                        index,
                        proc.pid,
                        how,
                    )
                    return EXIT_UNAVAILABLE if exit_code in (0, None) else abs(exit_code)
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S]
                if len(self.restarts) >= MAX_RESTARTS:
                    log.error(
                        "process %d (pid %d) %s: %d restarts within %.0f s already; stopping "
                        "the group",
                        index,
                        proc.pid,
                        how,
                        len(self.restarts),
                        RESTART_WINDOW_S,
                    )
                    return 1
                self.restarts.append(now)
                log.error("process %d (pid %d) %s; restarting it", index, proc.pid, how)
                self.states[index] = RESTARTING
                self.ready[index] = False
                self._start(index)


def check_shareable(address: str) -> None:
    """Raise OSError when ``address`` is held by a server that does not share it (a plain
    `fvs serve`, or anything else): found here at once rather than by every child after
    loading its model."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, int(port), 0, socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        raise OSError(
            f"cannot listen on {address}: the address is in use by a server that does not "
            f"share it, or not available ({exc.strerror or exc})"
        ) from exc


def _how(exit_code: int | None) -> str:
    if exit_code is not None and exit_code < 0:
        return f"was killed by {signal.Signals(-exit_code).name}"
    return f"exited with code {exit_code}"


def run_group(settings: Settings, log_level: str = "INFO", log_format: str = "text") -> int:
    """``fvs serve --processes N`` (N > 1): the exit code (0 after a graceful stop)."""
    return Supervisor(settings, log_level, log_format).run()
