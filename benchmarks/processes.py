"""Threads against processes: `fvs serve --processes 1` (one process, its worker threads and
onnxruntime's) and `--processes N` (N processes on one port, SO_REUSEPORT, onnxruntime
threads divided between them), both running at once on their own ports and measured in turn
at each level in ABBA slices, so that drift on a shared machine falls on both alike.
Closed-loop callers (each sends, awaits, repeats), each on a connection of its own: the kernel
spreads connections, not calls, across the processes, so a single shared connection would
reach one process only.

    .venv/bin/python benchmarks/processes.py [--levels 1 4 8 16] [--seconds 8] \
        [--processes 2] --out docs/benchmarks/processes.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, machine, write_json
from benchmarks.service import CITIZEN, free_port, pct, request
from fvs.api.v1 import verification_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
FVS = [sys.executable, "-m", "fvs", "--log-level", "WARNING"]
Slice = tuple[list[float], int, int, float]  # latencies (ms), refused, errors, seconds


async def closed_loop(address: str, photo: bytes, concurrency: int, seconds: float) -> Slice:
    """(latencies in ms of the answered calls, refused, errors, elapsed seconds)."""
    req = request(photo)
    ok: list[float] = []
    refused = errors = 0
    options = [("grpc.max_send_message_length", 16 << 20), ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(concurrency)]
    for channel in channels:  # connected before the clock starts
        await channel.channel_ready()
    stop = time.perf_counter() + seconds

    async def caller(channel: grpc.aio.Channel) -> None:
        nonlocal refused, errors
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                await stub.Verify(req, timeout=30)
                ok.append((time.perf_counter() - t) * 1e3)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused += 1
                    await asyncio.sleep(0.05)
                else:
                    errors += 1

    start = time.perf_counter()
    await asyncio.gather(*[caller(c) for c in channels])
    elapsed = time.perf_counter() - start
    for channel in channels:
        await channel.close()
    return ok, refused, errors, elapsed


def summarise(concurrency: int, slices: list[Slice]) -> dict[str, Any]:
    ok = [ms for s in slices for ms in s[0]]
    elapsed = sum(s[3] for s in slices)
    return {
        "concurrency": concurrency,
        "ok": len(ok),
        "refused": sum(s[1] for s in slices),
        "errors": sum(s[2] for s in slices),
        "throughput_per_s": round(len(ok) / elapsed, 2) if elapsed else 0.0,
        "p50_ms": round(pct(ok, 50), 1),
        "p99_ms": round(pct(ok, 99), 1),
        "slice_throughputs": [round(len(s[0]) / s[3], 2) for s in slices if s[3]],
    }


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (the supervisor and its children)."""
    total_kb = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return round(total_kb / 1024, 1)


def start_server(
    processes: int, data: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    address = f"127.0.0.1:{free_port()}"
    cmd = [*FVS, "serve", "--insecure", "--address", address, "--data-dir", str(data)]
    cmd += ["--processes", str(processes)]
    return subprocess.Popen(cmd, env=env), address


def wait_serving(address: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while subprocess.run(
        [*FVS, "health", "--server", address, "--timeout", "1"], capture_output=True, check=False
    ).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on {address} did not start")
        time.sleep(0.3)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    photo = args.photo.read_bytes()
    load_before = list(os.getloadavg())  # other jobs on the machine: read the ratios
    env = {**os.environ, "FVS_MODEL__PROVIDERS": "cpu"}
    configs = [1, args.processes]
    many_env = {**env, **dict(kv.split("=", 1) for kv in args.env_many)}
    with tempfile.TemporaryDirectory(prefix="fvs-procs-") as tmp:
        servers = {
            n: start_server(n, Path(tmp) / f"data{n}", many_env if n > 1 else env) for n in configs
        }  # each its own data directory: the two never share a core's worth of state
        try:
            for n, (proc, address) in servers.items():
                wait_serving(address, proc)
                subprocess.run(
                    [*FVS, "enroll", "--server", address, "--citizen-id", CITIZEN, "--create",
                     str(args.photo)],
                    check=True, capture_output=True,
                )  # fmt: skip
                await closed_loop(address, photo, 2 * n, args.warm_seconds)  # warm every process
            results: dict[int, list[dict[str, Any]]] = {n: [] for n in configs}
            for level in args.levels:
                # slices in ABBA order at each level: drift on a shared machine falls on both
                slices: dict[int, list[Slice]] = {n: [] for n in configs}
                for k in range(args.rounds):
                    for n in configs if k % 2 == 0 else configs[::-1]:
                        slices[n].append(
                            await closed_loop(
                                servers[n][1], photo, level, args.seconds / args.rounds
                            )
                        )
                for n in configs:
                    r = summarise(level, slices[n])
                    results[n].append(r)
                    print(
                        f"processes {n}  concurrency {level:>3}: {r['throughput_per_s']:6.1f}/s"
                        f"  p50 {r['p50_ms']:6.1f}  p99 {r['p99_ms']:6.1f} ms  refused "
                        f"{r['refused']}  errors {r['errors']}",
                        flush=True,
                    )
            rss = {n: tree_rss_mib(servers[n][0].pid) for n in configs}
        finally:
            for proc, _ in servers.values():
                proc.terminate()
            for proc, _ in servers.values():
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
    one, many = results[1], results[args.processes]
    return {
        "benchmark": "processes",
        "machine": machine(),
        "seconds_per_level": args.seconds,
        "rounds": args.rounds,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "photo": args.photo.name,
        "levels": args.levels,
        "env_many": args.env_many,
        "results": {f"processes_{n}": results[n] for n in configs},
        "rss_mib": {f"processes_{n}": rss[n] for n in configs},
        "ratio_throughput": [
            round(b["throughput_per_s"] / a["throughput_per_s"], 3)
            if a["throughput_per_s"]
            else None
            for a, b in zip(one, many, strict=True)
        ],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", type=Path, default=ROOT / "tests" / "data" / "obama2.jpg")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--warm-seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=4, help="ABBA slices per level")
    p.add_argument("--env-many", nargs="*", default=[], help="FVS_...=value for the N server")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    payload = asyncio.run(run(args))
    path = write_json("processes", payload, args.out or RESULTS / "processes.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
