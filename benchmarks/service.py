"""Service: an async gRPC load generator against a real `fvs serve` process. Closed-loop
callers at each concurrency level for a fixed time report throughput and p50/p95/p99; an
open-loop overload run offers a multiple of the sustainable rate and reports the accepted
calls' latency, the refused ones (OVERLOADED), calls lost without an answer (must be 0) and
the server's memory. The in-process pipeline on the same photo, measured first in the same
run, is the ceiling the service is measured against. Writes JSON and a PNG.

The targets' ratios are then measured *paired*, because these VMs drift by 10-20 % within a
minute: ``--rounds`` rounds, each alternating the service with its baseline (order reversed
every round), the ratio taken per round and the median reported:

* concurrency 1: one in-process extraction, one Verify, one after the other (p50 / p50);
* concurrency 8: in-process throughput at 2, 4 and 8 threads (the best counts) against the
  service with 8 closed-loop callers, ``--pair-seconds`` each;
* overload: the service with the best closed-loop level, then offered ``--overload`` x that
  rate open-loop; goodput counts the calls answered OK inside the offering window (the first
  0.5 s excluded), so calls finishing after it are not counted.

    .venv/bin/python benchmarks/service.py [--levels 1 2 4 8 16] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, machine, write_json
from fvs.api.v1 import verification_pb2, verification_pb2_grpc
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline

ROOT = Path(__file__).resolve().parent.parent
CITIZEN = "3100600445635"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_pipeline() -> FacePipeline:
    settings = Settings()
    pipeline = FacePipeline.load(
        settings.model, settings.pipeline, settings.quality, settings.score
    )
    pipeline.warm_up(2)
    return pipeline


def in_process_rate(pipeline: FacePipeline, photo: bytes, threads: int, seconds: float) -> float:
    """Images per second with ``threads`` threads extracting concurrently."""
    stop = time.perf_counter() + seconds

    def loop(_: int) -> int:
        k = 0
        while time.perf_counter() < stop:
            pipeline.extract(photo)
            k += 1
        return k

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        done = sum(pool.map(loop, range(threads)))
    return done / (time.perf_counter() - start)


def in_process(pipeline: FacePipeline, photo: bytes, seconds: float, threads: list[int]) -> dict:  # type: ignore[type-arg]
    lat = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        pipeline.extract(photo)
        lat.append((time.perf_counter() - t) * 1e3)
    rates = {n: in_process_rate(pipeline, photo, n, seconds) for n in threads}
    best = max(rates.values())
    from benchmarks.pipeline import naive_pipeline

    naive = naive_pipeline()
    naive(photo)
    count, start = 0, time.perf_counter()
    while time.perf_counter() < start + seconds:
        naive(photo)
        count += 1
    return {
        "p50_ms": statistics.median(lat),
        "p99_ms": pct(lat, 99),
        "calls": len(lat),
        "threads_images_per_s": rates,
        "best_images_per_s": best,
        "naive_insightface_sequential_per_s": count / (time.perf_counter() - start),
    }


def request(photo: bytes) -> verification_pb2.VerifyRequest:
    req = verification_pb2.VerifyRequest(citizen_id=CITIZEN, image=photo, purpose="KYC")
    req.consent.reference = "BENCH-1"
    req.consent.given_at.GetCurrentTime()
    return req


async def closed_loop(
    address: str, photo: bytes, concurrency: int, seconds: float, args_backoff_s: float = 0.05
) -> dict:  # type: ignore[type-arg]
    """Each caller sends, awaits, repeats; after OVERLOADED it backs off (default 50 ms)."""
    req = request(photo)
    ok: list[float] = []
    refused = 0
    errors = 0
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 16 << 20)]
    ) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal refused, errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    await stub.Verify(req, timeout=30)
                    ok.append((time.perf_counter() - t) * 1e3)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                        refused += 1
                        await asyncio.sleep(args_backoff_s)  # a polite client backs off
                    else:
                        errors += 1

        start = time.perf_counter()
        await asyncio.gather(*[caller() for _ in range(concurrency)])
        elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "ok": len(ok),
        "refused": refused,
        "errors": errors,
        "throughput_per_s": len(ok) / elapsed,
        "p50_ms": pct(ok, 50),
        "p95_ms": pct(ok, 95),
        "p99_ms": pct(ok, 99),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


async def open_loop(address: str, photo: bytes, rate: float, seconds: float, pid: int) -> dict:  # type: ignore[type-arg]
    req = request(photo)
    ok: list[float] = []
    done_at: list[float] = []  # when each OK answer arrived
    late: list[float] = []  # refused when a worker reached them (admission's backstop)
    refused = 0
    errors: dict[str, int] = {}
    memory: list[float] = []
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 16 << 20)]
    ) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)

        async def one() -> None:
            nonlocal refused
            t = time.perf_counter()
            try:
                await stub.Verify(req, timeout=30)
                ok.append((time.perf_counter() - t) * 1e3)
                done_at.append(time.perf_counter())
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused += 1
                    if "(waited" in (exc.details() or ""):  # refused when its turn came
                        late.append((time.perf_counter() - t) * 1e3)
                else:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1

        tasks = []
        start = time.perf_counter()
        next_mem = start
        k = 0
        while (now := time.perf_counter()) < start + seconds:
            due = start + k / rate
            if now >= due:
                tasks.append(asyncio.ensure_future(one()))
                k += 1
            if now >= next_mem:
                memory.append(rss_mb(pid))
                next_mem += 1.0
            await asyncio.sleep(max(0.0, min(due, next_mem) - time.perf_counter()))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        memory.append(rss_mb(pid))
    answered = len(ok) + refused + sum(errors.values())
    settle = min(0.5, seconds / 4)
    inside = sum(1 for t in done_at if start + settle <= t <= start + seconds)
    return {
        "offered_per_s": rate,
        "goodput_per_s": inside / (seconds - settle),
        "seconds": seconds,
        "sent": k,
        "ok": len(ok),
        "refused_overloaded": refused,
        "refused_after_waiting": len(late),
        "refused_after_waiting_p50_ms": pct(late, 50),
        "errors": errors,
        "lost": k - answered,
        "accepted_p50_ms": pct(ok, 50),
        "accepted_p99_ms": pct(ok, 99),
        "memory_mb": {"first": memory[0], "max": max(memory), "last": memory[-1]},
    }


def paired_c1(address: str, pipeline: FacePipeline, photo: bytes, calls: int) -> dict:  # type: ignore[type-arg]
    """p50 of a lone Verify over p50 of a lone in-process extraction, interleaved call by
    call (the order flips each pair)."""
    req = request(photo)
    service: list[float] = []
    local: list[float] = []
    with grpc.insecure_channel(
        address, options=[("grpc.max_send_message_length", 16 << 20)]
    ) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        stub.Verify(req, timeout=30)
        for k in range(calls):
            for which in ("service", "local") if k % 2 else ("local", "service"):
                t = time.perf_counter()
                if which == "service":
                    stub.Verify(req, timeout=30)
                    service.append((time.perf_counter() - t) * 1e3)
                else:
                    pipeline.extract(photo)
                    local.append((time.perf_counter() - t) * 1e3)
    return {
        "calls": calls,
        "service_p50_ms": statistics.median(service),
        "in_process_p50_ms": statistics.median(local),
        "ratio": statistics.median(service) / statistics.median(local),
    }


async def paired_throughput(
    address: str,
    pipeline: FacePipeline,
    photo: bytes,
    level: int,
    threads: list[int],
    rounds: int,
    seconds: float,
) -> dict:  # type: ignore[type-arg]
    """Per round: the best in-process rate over ``threads`` and the service at ``level``
    closed-loop callers, in alternating order; the ratio per round and its median."""
    out = []
    for k in range(rounds):
        row: dict[str, float] = {}
        steps = ("local", "service") if k % 2 == 0 else ("service", "local")
        for step in steps:
            if step == "local":
                rates = {n: in_process_rate(pipeline, photo, n, seconds) for n in threads}
                row["in_process_best_per_s"] = max(rates.values())
                row["in_process_best_threads"] = max(rates, key=lambda n: rates[n])
            else:
                result = await closed_loop(address, photo, level, seconds)
                row["service_per_s"] = result["throughput_per_s"]
                row["service_refused"] = result["refused"]
        row["ratio"] = row["service_per_s"] / row["in_process_best_per_s"]
        out.append(row)
        print(
            f"  paired round {k + 1}: service c{level} {row['service_per_s']:.1f}/s, in-process "
            f"best {row['in_process_best_per_s']:.1f}/s -> {row['ratio']:.3f}",
            flush=True,
        )
    return {
        "level": level,
        "rounds": out,
        "ratio_median": statistics.median(r["ratio"] for r in out),
    }


async def paired_overload(
    address: str, photo: bytes, level: int, factor: float, rounds: int, seconds: float, pid: int
) -> dict:  # type: ignore[type-arg]
    """Per round: the sustainable rate (``level`` closed-loop callers), then ``factor`` x it
    open-loop; goodput over that round's sustainable rate."""
    out = []
    for k in range(rounds):
        closed = await closed_loop(address, photo, level, seconds)
        sustainable = closed["throughput_per_s"]
        over = await open_loop(address, photo, factor * sustainable, seconds, pid)
        row = {
            "sustainable_per_s": sustainable,
            "offered_per_s": over["offered_per_s"],
            "goodput_per_s": over["goodput_per_s"],
            "ratio": over["goodput_per_s"] / sustainable,
            "accepted_p99_ms": over["accepted_p99_ms"],
            "refused": over["refused_overloaded"],
            "refused_after_waiting": over["refused_after_waiting"],
            "lost": over["lost"],
        }
        out.append(row)
        print(
            f"  overload round {k + 1}: sustainable {sustainable:.1f}/s, goodput "
            f"{row['goodput_per_s']:.1f}/s -> {row['ratio']:.3f}, accepted p99 "
            f"{row['accepted_p99_ms']:.0f} ms, lost {row['lost']}",
            flush=True,
        )
    return {
        "level": level,
        "factor": factor,
        "rounds": out,
        "goodput_ratio_median": statistics.median(r["ratio"] for r in out),
        "lost": sum(r["lost"] for r in out),
    }


def plot(levels: list[dict], path: Path, ceiling: float) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = [r["concurrency"] for r in levels]
    fig, ax1 = plt.subplots(figsize=(6.5, 4.5))
    ax1.plot(c, [r["p50_ms"] for r in levels], "o-", label="p50 latency")
    ax1.plot(c, [r["p99_ms"] for r in levels], "s--", label="p99 latency")
    ax1.set(xscale="log", xlabel="concurrent callers", ylabel="latency (ms)")
    ax1.set_xticks(c, [str(x) for x in c])
    ax2 = ax1.twinx()
    ax2.plot(c, [r["throughput_per_s"] for r in levels], "^-", color="green", label="throughput")
    ax2.axhline(ceiling, color="green", linestyle=":", label="in-process ceiling")
    ax2.set_ylabel("verifications / s")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize=8)
    ax1.set_title("FVS Verify over gRPC")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


async def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    photo = args.photo.read_bytes()
    pipeline = load_pipeline()
    ceiling = in_process(pipeline, photo, args.seconds / 2, [1, 2, 4, 8])
    print(
        f"in-process: p50 {ceiling['p50_ms']:.1f} ms, best {ceiling['best_images_per_s']:.1f}"
        f" images/s; naive insightface sequential "
        f"{ceiling['naive_insightface_sequential_per_s']:.1f}/s",
        flush=True,
    )
    address = f"127.0.0.1:{free_port()}"
    data = Path(tempfile.mkdtemp(prefix="fvs-bench-"))
    env = {
        **os.environ,
        "FVS_MODEL__PROVIDERS": args.providers,
        **dict(kv.split("=", 1) for kv in args.env),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fvs",
            "--log-level",
            "WARNING",
            "serve",
            "--insecure",
            "--address",
            address,
            "--data-dir",
            str(data),
        ],
        env=env,
    )
    try:
        fvs = [sys.executable, "-m", "fvs", "--log-level", "ERROR"]
        deadline = time.monotonic() + 60
        while subprocess.run(
            [*fvs, "health", "--server", address, "--timeout", "1"],
            capture_output=True,
            check=False,
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        subprocess.run(
            [
                *fvs,
                "enroll",
                "--server",
                address,
                "--citizen-id",
                CITIZEN,
                "--create",
                str(args.photo),
            ],
            check=True,
            capture_output=True,
        )
        await closed_loop(address, photo, 2, 2.0)  # warm
        levels = []
        for level in args.levels:
            levels.append(await closed_loop(address, photo, level, args.seconds))
            r = levels[-1]
            print(
                f"concurrency {level:>3}: {r['throughput_per_s']:6.1f}/s  p50 "
                f"{r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f}  p99 {r['p99_ms']:6.1f} ms  "
                f"refused {r['refused']}  errors {r['errors']}",
                flush=True,
            )
        sustainable = max(r["throughput_per_s"] for r in levels)
        unloaded_p99 = levels[0]["p99_ms"]
        overload = await open_loop(
            address, photo, args.overload * sustainable, args.overload_seconds, server.pid
        )
        print(
            f"overload x{args.overload} ({overload['offered_per_s']:.0f}/s for "
            f"{args.overload_seconds:.0f} s): ok {overload['ok']}, refused "
            f"{overload['refused_overloaded']} ({overload['refused_after_waiting']} after waiting),"
            f" errors {overload['errors']}, lost "
            f"{overload['lost']}; accepted p99 {overload['accepted_p99_ms']:.1f} ms = "
            f"x{overload['accepted_p99_ms'] / unloaded_p99:.2f} unloaded p99; memory "
            f"{overload['memory_mb']}",
            flush=True,
        )
        best_level = max(levels, key=lambda r: r["throughput_per_s"])["concurrency"]
        paired = {
            "c1": paired_c1(address, pipeline, photo, args.pair_calls),
            "throughput": await paired_throughput(
                address, pipeline, photo, 8, [2, 4, 8], args.rounds, args.pair_seconds
            ),
            "overload": await paired_overload(
                address,
                photo,
                best_level,
                args.overload,
                args.rounds,
                args.pair_seconds,
                server.pid,
            ),
        }
        print(f"paired c1 p50 ratio {paired['c1']['ratio']:.3f}", flush=True)
    finally:
        pipeline.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    by_level = {r["concurrency"]: r for r in levels}
    ratios = {
        "c1_p50_over_in_process_p50": by_level[1]["p50_ms"] / ceiling["p50_ms"]
        if 1 in by_level
        else None,
        "c8_throughput_over_best_in_process": by_level[8]["throughput_per_s"]
        / ceiling["best_images_per_s"]
        if 8 in by_level
        else None,
        "c8_throughput_over_naive_sequential": by_level[8]["throughput_per_s"]
        / ceiling["naive_insightface_sequential_per_s"]
        if 8 in by_level
        else None,
        "best_throughput_over_best_in_process": max(r["throughput_per_s"] for r in levels)
        / ceiling["best_images_per_s"],
        "overload_accepted_p99_over_unloaded_p99": overload["accepted_p99_ms"] / unloaded_p99,
        "overload_goodput_over_best_level": overload["goodput_per_s"]
        / max(r["throughput_per_s"] for r in levels),
        "paired_c1_p50_over_in_process_p50": paired["c1"]["ratio"],
        "paired_c8_throughput_over_best_in_process": paired["throughput"]["ratio_median"],
        "paired_overload_goodput_over_sustainable": paired["overload"]["goodput_ratio_median"],
    }
    server_env = dict(kv.split("=", 1) for kv in args.env)
    bound_ms = float(
        server_env.get("FVS_SERVER__MAX_QUEUE_WAIT_MS", Settings().server.max_queue_wait_ms)
    )
    targets = {
        "accepted_p99_limit_ms": bound_ms + 2 * unloaded_p99,
        "accepted_p99_ms": overload["accepted_p99_ms"],
    }
    png = (
        args.out.with_suffix(".png")
        if args.out
        else RESULTS / f"service-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.png"
    )
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(levels, png, ceiling["best_images_per_s"])
    return {
        "benchmark": "service",
        "machine": machine(),
        "parameters": {k: str(v) for k, v in vars(args).items()},
        "in_process": ceiling,
        "levels": levels,
        "overload": overload,
        "paired": paired,
        "ratios": ratios,
        "overload_latency": targets,
        "plot": str(png),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", type=Path, default=ROOT / "tests" / "data" / "obama2.jpg")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--overload", type=float, default=4.0, help="multiple of sustainable load")
    p.add_argument("--overload-seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=3, help="paired rounds per ratio")
    p.add_argument("--pair-seconds", type=float, default=5.0, help="each slice of a round")
    p.add_argument("--pair-calls", type=int, default=100, help="paired lone calls")
    p.add_argument("--providers", default="cpu")
    p.add_argument("--env", nargs="*", default=[], help="FVS_...=value for the server")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    payload = asyncio.run(run(args))
    for k, v in payload["ratios"].items():
        print(f"{k}: {v:.2f}" if v is not None else f"{k}: n/a")
    print(f"wrote {write_json('service', payload, args.out)} and {payload['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
