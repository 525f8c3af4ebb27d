"""Where the CPU goes under open-loop overload: a real `fvs serve --insecure`, rounds of a
closed loop (the sustainable rate) then an open loop at ``--factor`` times it, with the
server's CPU (its event-loop thread apart), the load generator's, the machine's idle cores,
goodput, refusals, how long after the load stopped the last answer came (``drain_s``), and
accepted p99. ``--source DIR`` runs the server from another checkout (an A/B of two commits in
one run, alternating round by round when both are given).

    python benchmarks/overload_cpu.py --factor 16 --rounds 2
    python benchmarks/overload_cpu.py --factor 16 --source . /tmp/fvs-old --out x.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, write_json  # noqa: E402
from benchmarks.service import CITIZEN, closed_loop, free_port, open_loop  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _idle() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / TICK


def _me() -> float:
    t = os.times()
    return t.user + t.system


class Server:
    def __init__(self, source: Path, env: dict[str, str]) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.data = Path(tempfile.mkdtemp(prefix="fvs-overload-"))
        environment = {
            **os.environ,
            "FVS_MODEL__PROVIDERS": "cpu",
            "PYTHONPATH": str(source.resolve()),
            **env,
        }
        self.fvs = [sys.executable, "-m", "fvs", "--log-level", "ERROR"]
        self.proc = subprocess.Popen(
            [*self.fvs, "serve", "--insecure", "--address", self.address, "--data-dir",
             str(self.data)],
            env=environment,
            cwd=source,
        )  # fmt: skip
        self.env = environment

    def ready(self, photo: Path) -> None:
        deadline = time.monotonic() + 120
        while subprocess.run(
            [*self.fvs, "health", "--server", self.address, "--timeout", "1"],
            capture_output=True,
            check=False,
            env=self.env,
        ).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        subprocess.run(
            [*self.fvs, "enroll", "--server", self.address, "--citizen-id", CITIZEN,
             "--create", str(photo)],
            check=True, capture_output=True, env=self.env,
        )  # fmt: skip

    def cpu(self) -> tuple[float, float]:
        """(process CPU s, event-loop thread CPU s)."""
        pid = self.proc.pid
        return _stat_cpu(Path(f"/proc/{pid}/stat")), _stat_cpu(Path(f"/proc/{pid}/task/{pid}/stat"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


async def phase(server: Server, name: str, run: Any, seconds: float) -> dict[str, Any]:
    (cpu0, loop0), me0, idle0, t0 = server.cpu(), _me(), _idle(), time.perf_counter()
    result = await run
    elapsed = time.perf_counter() - t0
    cpu1, loop1 = server.cpu()
    calls = result.get("sent", result.get("ok", 0) + result.get("refused", 0))
    out = {
        "phase": name,
        "seconds": round(elapsed, 2),
        "drain_s": round(max(0.0, elapsed - seconds), 2),
        "server_cores": round((cpu1 - cpu0) / elapsed, 3),
        "event_loop_cores": round((loop1 - loop0) / elapsed, 3),
        "event_loop_ms_per_call": round(1000 * (loop1 - loop0) / max(1, calls), 3),
        "load_generator_cores": round((_me() - me0) / elapsed, 3),
        "idle_cores": round((_idle() - idle0) / elapsed, 3),
        "calls": calls,
        "ok": result["ok"],
        "rate_per_s": round(result.get("goodput_per_s") or result.get("throughput_per_s"), 2),
        "refused": result.get("refused_overloaded", result.get("refused")),
        "refused_after_waiting": result.get("refused_after_waiting", 0),
        "accepted_p99_ms": round(result.get("accepted_p99_ms") or result["p99_ms"], 1),
        "lost": result.get("lost", 0),
    }
    print(json.dumps(out), flush=True)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    photo = args.photo.read_bytes()
    env = dict(kv.split("=", 1) for kv in args.env)
    servers = {str(source): Server(source, env) for source in args.source}
    try:
        for server in servers.values():
            server.ready(args.photo)
            await closed_loop(server.address, photo, 2, 2.0)  # warm
        rounds: list[dict[str, Any]] = []
        for k in range(args.rounds):
            order = list(servers.items()) if k % 2 == 0 else list(servers.items())[::-1]
            for source, server in order:
                closed = await phase(
                    server,
                    f"closed{args.level}",
                    closed_loop(server.address, photo, args.level, args.seconds),
                    args.seconds,
                )
                rate = args.factor * closed["rate_per_s"]
                over = await phase(
                    server,
                    f"open x{args.factor:g}",
                    open_loop(server.address, photo, rate, args.seconds, server.proc.pid),
                    args.seconds,
                )
                over["goodput_over_sustainable"] = round(
                    over["rate_per_s"] / closed["rate_per_s"], 3
                )
                rounds.append({"source": source, "round": k + 1, "closed": closed, "open": over})
    finally:
        for server in servers.values():
            server.stop()
    return {
        "benchmark": "overload_cpu",
        "machine": machine(),
        "parameters": {k: str(v) for k, v in vars(args).items()},
        "rounds": rounds,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", type=Path, default=ROOT / "tests" / "data" / "obama2.jpg")
    p.add_argument("--level", type=int, default=4, help="closed-loop callers (sustainable)")
    p.add_argument("--factor", type=float, default=4.0, help="open-loop multiple of it")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--source", type=Path, nargs="+", default=[ROOT], help="checkouts to serve")
    p.add_argument("--env", nargs="*", default=[], help="FVS_...=value for the servers")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    path = write_json("overload_cpu", asyncio.run(run(args)), args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
