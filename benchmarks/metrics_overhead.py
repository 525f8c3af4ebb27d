"""What Prometheus metrics cost Verify: two `fvs serve` processes with the same enrolment, one with
metrics on and one without, called in turn at concurrency 1 (ABBA order, so drift and
neighbours' load fall on both alike). Reports each one's p50/p99 and the ratio of the p50s.

    .venv/bin/python benchmarks/metrics_overhead.py [--calls 400]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, machine, write_json
from benchmarks.ops import Server
from fvs.api.client import FvsClient

ROOT = Path(__file__).resolve().parent.parent
CITIZEN = "3100600445635"


def stats(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(np.mean(ms)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=400, help="Verify calls per server")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fvs-metrics-overhead-"))
    env = {"FVS_MODEL__PROVIDERS": "cpu"}
    photo = (ROOT / "tests" / "data" / "obama2.jpg").read_bytes()
    enrol = (ROOT / "tests" / "data" / "obama.jpg").read_bytes()
    off = Server(root / "off", False, root / "off.log", env)
    on = Server(root / "on", True, root / "on.log", env)
    lat: dict[str, list[float]] = {"off": [], "on": []}
    try:
        off.wait_serving()
        on.wait_serving()
        with FvsClient(off.address) as c_off, FvsClient(on.address) as c_on:
            clients = {"off": c_off, "on": c_on}
            for client in clients.values():  # the same citizen and photo in both
                client.enroll(CITIZEN, enrol, create_if_missing=True)
            for name in ("off", "on"):  # warm both
                for _ in range(5):
                    clients[name].verify(CITIZEN, photo, "KYC", "C-1")
            for k in range(args.calls):
                order = ("off", "on") if k % 2 == 0 else ("on", "off")
                for name in order:
                    t = time.perf_counter()
                    clients[name].verify(CITIZEN, photo, "KYC", "C-1")
                    lat[name].append((time.perf_counter() - t) * 1000.0)
        url = f"http://{on.metrics_address}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        calls = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("fvs_calls_total{")
        )
    finally:
        off.stop()
        on.stop()
        shutil.rmtree(root, ignore_errors=True)
    result = {
        "benchmark": "metrics_overhead",
        "machine": machine(),
        "parameters": {"calls": args.calls, "concurrency": 1},
        "metrics_off": stats(lat["off"]),
        "metrics_on": stats(lat["on"]),
        "p50_ratio_on_over_off": float(np.median(lat["on"]) / np.median(lat["off"])),
        "scrape": {"fvs_calls_total": calls},
    }
    out = (
        args.out
        or RESULTS / f"metrics-overhead-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    )
    write_json("metrics_overhead", result, out)
    print(
        f"Verify at concurrency 1, {args.calls} calls each: p50 off "
        f"{result['metrics_off']['p50_ms']:.2f} ms, on {result['metrics_on']['p50_ms']:.2f} ms "
        f"(on/off {result['p50_ratio_on_over_off']:.3f}); p99 off "
        f"{result['metrics_off']['p99_ms']:.1f}, on {result['metrics_on']['p99_ms']:.1f} ms"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
