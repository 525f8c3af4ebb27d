"""Helpers of the operations benchmarks (soak, metrics overhead): a real `fvs serve` process
and what /proc says about it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fvs.api.client import CallFailedError, FvsClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`fvs serve --insecure` on a free loopback port (metrics on a second one if asked)."""

    def __init__(self, data: Path, metrics: bool, log: Path, env: dict[str, str]) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.metrics_address = f"127.0.0.1:{free_port()}" if metrics else ""
        command = [
            sys.executable,
            "-m",
            "fvs",
            "--log-level",
            "WARNING",
            "serve",
            "--insecure",
            "--address",
            self.address,
            "--data-dir",
            str(data),
        ]
        if metrics:
            command += ["--metrics-address", self.metrics_address]
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        self.pid = self.proc.pid

    def wait_serving(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        with FvsClient(self.address, timeout_s=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                try:
                    if client.health() == "SERVING":
                        return
                except CallFailedError:
                    pass
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> int:
        """SIGTERM (graceful); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def process_facts(pid: int) -> dict[str, float]:
    """RSS (MiB), open file descriptors and threads of process ``pid``."""
    facts: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            facts["rss_mb"] = int(line.split()[1]) / 1024.0
        elif line.startswith("Threads:"):
            facts["threads"] = int(line.split()[1])
    facts["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return facts
