"""A real grpc.aio FVS server on port 0, in its own thread and event loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fvs.api.client import CallFailedError, FvsClient
from fvs.api.server import FvsServer, PipelineLoader, build_parts
from fvs.citizen_id import complete
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.store.sqlite import SqliteStore
from tests.conftest import photo


class DevClient(FvsClient):
    """A client of an --insecure server, verifying with a permitted purpose and fresh consent."""

    def verify(
        self,
        citizen_id: str,
        image: bytes,
        purpose: str = "KYC",  # type: ignore[override]
        consent_reference: str = "CONSENT-TEST-1",
        **kwargs: object,
    ):
        return super().verify(citizen_id, image, purpose, consent_reference, **kwargs)


class ServerThread:
    """Serves --insecure (the development system) unless settings.access.tls_dir is set."""

    def __init__(self, settings: Settings, loader: PipelineLoader) -> None:
        if settings.access.tls_dir is None:
            settings.access.insecure = True
        self.settings = settings
        self.parts = build_parts(settings)
        self.service = self.parts.service
        self.loop = asyncio.new_event_loop()
        self.server: FvsServer | None = None
        self.loaded: Future[None] = Future()
        started: Future[int] = Future()

        async def main() -> None:
            self.server = FvsServer(settings, self.parts)
            started.set_result(await self.server.start("127.0.0.1:0"))
            try:
                await self.server.load(loader)
                self.loaded.set_result(None)
            except Exception as exc:
                self.loaded.set_exception(exc)

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.create_task(main())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="fvs-test-server", daemon=True)
        self.thread.start()
        self.port = started.result(timeout=30)
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        assert self.server is not None
        asyncio.run_coroutine_threadsafe(self.server.stop(grace=1.0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.parts.close()


@pytest.fixture(scope="session")
def server(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> Iterator[ServerThread]:
    settings = settings_factory()
    settings.server.max_queue = 64  # room for the 50-call burst test
    settings.server.max_queue_wait_ms = 60_000
    # the tests on this shared server enrol the two committed faces under many citizen IDs:
    # duplicate search off here (tests/e2e/test_dedup.py covers it, on its own servers)
    settings.dedup.mode = "off"
    running = ServerThread(settings, lambda: pipeline)
    running.loaded.result(timeout=60)
    yield running
    running.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A real `fvs serve --insecure` process on loopback (the operations tests: metrics, logs,
    signals, crashes). Its log goes to ``log_path``; ``stop()`` never leaves it running."""

    def __init__(
        self,
        data_dir: Path,
        *,
        metrics: bool = False,
        log_format: str = "json",
        grace_s: float = 5.0,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self._options = (metrics, log_format, grace_s, env, args)
        self._start()

    def _start(self) -> None:
        metrics, log_format, grace_s, env, args = self._options
        data_dir = self.data_dir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_port = free_port() if metrics else 0
        self.log_path = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "fvs",
            "--log-format",
            log_format,
            "serve",
            "--insecure",
            "--address",
            self.address,
            "--data-dir",
            str(data_dir),
            "--providers",
            "cpu",
            "--grace",
            str(grace_s),
        ]
        if metrics:
            command += ["--metrics-address", f"127.0.0.1:{self.metrics_port}"]
        command += args
        environment = {**os.environ, "FVS_MODEL__WARMUP_RUNS": "1", **(env or {})}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=environment
        )

    def wait_serving(self, timeout_s: float = 90.0, port_retries: int = 2) -> None:
        deadline = time.monotonic() + timeout_s
        with FvsClient(self.address, timeout_s=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    logs = self.logs()
                    if port_retries > 0 and "Address already in use" in logs:
                        # free_port() closes the port it found: another process took it in
                        # the meantime (seen once in CI). Not what the tests test: new ports.
                        self._log.close()
                        self._start()
                        return self.wait_serving(timeout_s, port_retries - 1)
                    raise AssertionError(f"server exited {self.proc.returncode}:\n{logs}")
                try:
                    if client.health() == "SERVING":
                        return
                except CallFailedError:
                    pass
                time.sleep(0.2)
        raise AssertionError(f"server not SERVING after {timeout_s} s:\n{self.logs()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()


@dataclass
class Burst:
    """Client threads enrolling distinct citizens until told to stop."""

    address: str
    prefix: str
    acknowledged: dict[str, float] = field(default_factory=dict)  # citizen -> answer time
    refused: dict[str, str] = field(default_factory=dict)  # citizen -> "CODE/REASON"
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, n: int) -> None:
        for k in range(n):
            thread = threading.Thread(target=self._loop, args=(k,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _loop(self, k: int) -> None:
        image = photo("obama.jpg" if k % 2 else "biden.jpg")
        with FvsClient(self.address, timeout_s=60) as client:
            i = 0
            while not self.stop.is_set():
                citizen = complete(f"{self.prefix}{k:02d}{i:05d}")
                i += 1
                try:
                    client.enroll(citizen, image, create_if_missing=True)
                except CallFailedError as exc:
                    with self.lock:
                        self.refused[citizen] = f"{exc.code}/{exc.reason}"
                    time.sleep(0.05)
                else:
                    with self.lock:
                        self.acknowledged[citizen] = time.monotonic()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def enrolled_citizens(data: Path) -> set[str]:
    """Citizens with an active template in the SQLite registry of ``data``."""
    store = SqliteStore(data)
    try:
        rows = store.db.read("SELECT citizen_id FROM face_templates WHERE active = 1")
        return {str(r[0]) for r in rows}
    finally:
        store.close()
