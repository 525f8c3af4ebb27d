"""Where a lone Verify's time goes, socket to socket: a real `fvs serve --insecure` process
with metrics on, called at concurrency 1. The client's round trip is split with the server's
own per-stage histograms (fvs_stage_duration_seconds: decode, detect, quality, align, embed,
match, gate, audit append, audit flush, store) into pipeline stages, service stages and the
rest (gRPC, protobuf conversion, intake, thread hops, receipt signing, the event loop). The
in-process pipeline on the same photo, measured in the same run, is the floor.

    .venv/bin/python benchmarks/overhead.py [--calls 300]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, write_json
from benchmarks.ops import Server
from fvs.api.client import FvsClient
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline

ROOT = Path(__file__).resolve().parent.parent
CITIZEN = "3100600445635"
PIPELINE = ("decode", "detect", "quality", "align", "embed", "match")
SERVICE = ("gate", "audit_append", "audit_flush", "store")


def stage_means(metrics_address: str) -> dict[str, tuple[float, int]]:
    """(sum seconds, count) per stage from the server's /metrics."""
    text = urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10).read()
    out: dict[str, list[float]] = {}
    for line in text.decode().splitlines():
        m = re.match(r'fvs_stage_duration_seconds_(sum|count)\{stage="([a-z_]+)"\} (\S+)', line)
        if m:
            out.setdefault(m.group(2), [0.0, 0.0])[m.group(1) == "count"] = float(m.group(3))
    return {k: (v[0], int(v[1])) for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    photo = (ROOT / "tests" / "data" / "obama2.jpg").read_bytes()
    enrol = (ROOT / "tests" / "data" / "obama.jpg").read_bytes()
    settings = Settings()
    settings.model.providers = "cpu"
    pipeline = FacePipeline.load(settings.model, settings.pipeline)
    for _ in range(5):
        pipeline.extract(photo)
    in_process = []
    for _ in range(min(args.calls, 100)):
        t = time.perf_counter()
        pipeline.extract(photo)
        in_process.append(time.perf_counter() - t)
    pipeline.close()
    root = Path(tempfile.mkdtemp(prefix="fvs-overhead-"))
    server = Server(root / "data", True, root / "server.log", {"FVS_MODEL__PROVIDERS": "cpu"})
    try:
        server.wait_serving()
        with FvsClient(server.address) as client:
            client.enroll(CITIZEN, enrol, create_if_missing=True)
            for _ in range(10):
                client.verify(CITIZEN, photo, "KYC", "C-1")
            before = stage_means(server.metrics_address)
            rtt = []
            for _ in range(args.calls):
                t = time.perf_counter()
                client.verify(CITIZEN, photo, "KYC", "C-1")
                rtt.append(time.perf_counter() - t)
            after = stage_means(server.metrics_address)
    finally:
        server.stop()
    stages: dict[str, float] = {}
    for name, (total, count) in after.items():
        t0, c0 = before.get(name, (0.0, 0))
        if count - c0 > 0:  # per Verify (each stage runs once a call)
            stages[name] = 1000 * (total - t0) / args.calls
    mean_rtt = 1000 * float(np.mean(rtt))
    pipe = sum(stages.get(s, 0.0) for s in PIPELINE)
    service = sum(stages.get(s, 0.0) for s in SERVICE)
    rest = mean_rtt - pipe - service
    payload = {
        "benchmark": "overhead",
        "machine": machine(),
        "calls": args.calls,
        "round_trip_ms": {"mean": mean_rtt, "p50": 1000 * float(np.median(rtt))},
        "in_process_pipeline_ms": {
            "mean": 1000 * float(np.mean(in_process)),
            "p50": 1000 * float(np.median(in_process)),
        },
        "stages_ms_per_call": stages,
        "pipeline_stages_ms": pipe,
        "service_stages_ms": service,
        "rest_ms": rest,
    }
    path = write_json("overhead", payload, args.out)
    print(
        f"round trip mean {mean_rtt:.2f} ms (p50 {payload['round_trip_ms']['p50']:.2f}); "
        f"in-process pipeline mean {payload['in_process_pipeline_ms']['mean']:.2f} ms"
    )
    for name in (*PIPELINE, *SERVICE):
        if name in stages:
            print(f"  {name:13} {stages[name]:7.3f} ms  {100 * stages[name] / mean_rtt:5.1f} %")
    print(
        f"  {'rest':13} {rest:7.3f} ms  {100 * rest / mean_rtt:5.1f} %  (gRPC, conversion, "
        "intake, thread hops, receipt, event loop)"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
