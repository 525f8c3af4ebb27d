"""Soak: a real `fvs serve` process (metrics on) driven at a moderate, steady rate by a mix
of genuine, impostor and refused Verify calls for M minutes. Reports errors (an answer other
than the one each call should get), calls lost without an answer, latency per window, and the
server's RSS, open file descriptors and threads over time, as JSON and a PNG.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 6]
    .venv/bin/python benchmarks/soak.py --seconds 15 --sample-s 1     # smoke (CI)
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, machine, write_json
from benchmarks.ops import Server, process_facts
from fvs.api.client import CallFailedError, FvsClient

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "data"
CITIZEN_A = "3100600445635"  # enrolled with obama.jpg
CITIZEN_B = "1234545678781"  # enrolled with biden.jpg
UNKNOWN = "1101700203450"
CONSENT = "SOAK-CONSENT"


@dataclass(frozen=True)
class Kind:
    """One kind of call and the answer it must get ("OK" or the refusal reason)."""

    name: str
    citizen: str
    photo: str
    expect: str
    consent: bool = True


# 10 slots: 5 genuine, 3 impostor, 2 refused (4 reasons in turn)
MIX = [
    Kind("genuine", CITIZEN_A, "obama2.jpg", "OK"),
    Kind("genuine", CITIZEN_B, "biden2.jpg", "OK"),
    Kind("impostor", CITIZEN_A, "biden2.jpg", "OK"),
    Kind("genuine", CITIZEN_A, "obama2.jpg", "OK"),
    Kind("refused", CITIZEN_A, "obama2.jpg", "CONSENT_REQUIRED", consent=False),
    Kind("genuine", CITIZEN_B, "biden2.jpg", "OK"),
    Kind("impostor", CITIZEN_B, "obama2.jpg", "OK"),
    Kind("genuine", CITIZEN_A, "obama2.jpg", "OK"),
    Kind("impostor", CITIZEN_A, "biden.jpg", "OK"),
    Kind("refused", UNKNOWN, "obama2.jpg", "CITIZEN_NOT_FOUND"),
    Kind("refused", CITIZEN_B, "not-an-image", "IMAGE_UNDECODABLE"),
]


def _photo(name: str) -> bytes:
    return b"\x00not an image" if name == "not-an-image" else (PHOTOS / name).read_bytes()


class Driver:
    """Open loop: calls start on a fixed schedule, whatever the earlier ones are doing."""

    def __init__(self, address: str, rate: float) -> None:
        self.address = address
        self.rate = rate
        self.photos = {k.photo: _photo(k.photo) for k in MIX}
        self.records: list[tuple[float, str, float, str, bool]] = []
        self.lock = threading.Lock()
        self._local = threading.local()

    def _client(self) -> FvsClient:
        client: FvsClient | None = getattr(self._local, "client", None)
        if client is None:
            client = FvsClient(self.address, timeout_s=30)
            self._local.client = client
        return client

    def _one(self, start: float, kind: Kind) -> None:
        t = time.perf_counter()
        try:
            result = self._client().verify(
                kind.citizen,
                self.photos[kind.photo],
                "KYC",
                CONSENT if kind.consent else "",
            )
            answer = "OK"
            # genuine pairs must match, impostor pairs must not
            ok = (result.match_score >= 50) == (kind.name == "genuine")
        except CallFailedError as exc:
            answer = exc.reason or exc.code
            ok = answer == kind.expect
        except Exception as exc:  # no answer at all: lost
            answer, ok = f"LOST:{type(exc).__name__}", False
        if answer != kind.expect:
            ok = False
        latency = (time.perf_counter() - t) * 1000.0
        with self.lock:
            self.records.append((start, kind.name, latency, answer, ok))

    def run(self, seconds: float, on_tick: Any) -> None:
        begin = time.perf_counter()
        kinds = itertools.cycle(MIX)
        with ThreadPoolExecutor(max_workers=8) as pool:
            k = 0
            while (now := time.perf_counter() - begin) < seconds:
                due = k / self.rate
                if now < due:
                    time.sleep(min(due - now, 0.05))
                    on_tick(now)
                    continue
                pool.submit(self._one, due, next(kinds))
                k += 1
                on_tick(now)


def summarise(
    records: list[tuple[float, str, float, str, bool]],
    samples: list[dict[str, float]],
    window_s: float,
    warmup_s: float,
) -> dict[str, Any]:
    windows = []
    end = max((r[0] for r in records), default=0.0)
    for w0 in np.arange(0.0, end + 1e-9, window_s):
        lat = [r[2] for r in records if w0 <= r[0] < w0 + window_s]
        if lat:
            windows.append(
                {
                    "t_s": float(w0),
                    "calls": len(lat),
                    "p50_ms": float(np.percentile(lat, 50)),
                    "p99_ms": float(np.percentile(lat, 99)),
                }
            )
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples
    rss0, rss1 = after[0]["rss_mb"], after[-1]["rss_mb"]
    by_kind: dict[str, dict[str, int]] = {}
    for _, kind, _, answer, _ in records:
        by_kind.setdefault(kind, {}).setdefault(answer, 0)
        by_kind[kind][answer] += 1
    latencies = [r[2] for r in records]
    return {
        "calls": len(records),
        "by_kind": by_kind,
        "unexpected": sum(1 for r in records if not r[4]),
        "lost": sum(1 for r in records if r[3].startswith("LOST")),
        "p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies else None,
        "windows": windows,
        "after_warmup": {
            "from_s": after[0]["t_s"],
            "rss_start_mb": rss0,
            "rss_end_mb": rss1,
            "rss_max_mb": max(s["rss_mb"] for s in after),
            "rss_growth_pct": 100.0 * (rss1 - rss0) / rss0,
            "fds_min": min(s["fds"] for s in after),
            "fds_max": max(s["fds"] for s in after),
            "threads_min": min(s["threads"] for s in after),
            "threads_max": max(s["threads"] for s in after),
        },
    }


def plot(summary: dict[str, Any], samples: list[dict[str, float]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    w = summary["windows"]
    axes[0].plot([x["t_s"] for x in w], [x["p50_ms"] for x in w], label="p50")
    axes[0].plot([x["t_s"] for x in w], [x["p99_ms"] for x in w], label="p99")
    axes[0].set_ylabel("Verify latency (ms)")
    axes[0].legend()
    t = [s["t_s"] for s in samples]
    axes[1].plot(t, [s["rss_mb"] for s in samples])
    axes[1].set_ylabel("server RSS (MiB)")
    axes[1].axvline(summary["after_warmup"]["from_s"], color="grey", linestyle=":")
    axes[2].plot(t, [s["fds"] for s in samples], label="open fds")
    axes[2].plot(t, [s["threads"] for s in samples], label="threads")
    axes[2].set_ylabel("count")
    axes[2].set_xlabel("time (s)")
    axes[2].legend()
    fig.suptitle(
        f"FVS soak: {summary['calls']} calls, {summary['unexpected']} unexpected, "
        f"{summary['lost']} lost; RSS {summary['after_warmup']['rss_growth_pct']:+.1f}% "
        "after warm-up"
    )
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seconds", type=float, help="run length in seconds (overrides --minutes)")
    p.add_argument("--rate", type=float, default=6.0, help="calls per second")
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--warmup-s", type=float, help="default: a tenth of the run, at most 60 s")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    seconds = args.seconds if args.seconds is not None else 60.0 * args.minutes
    warmup_s = args.warmup_s if args.warmup_s is not None else min(60.0, seconds / 10)
    out = args.out or RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="fvs-soak-"))
    # Queue rather than shed: the soak looks for leaks and errors, not for the admission
    # policy (benchmarks/service.py measures that); an OVERLOADED answer still counts as
    # unexpected here.
    env = {"FVS_MODEL__PROVIDERS": "cpu", "FVS_SERVER__MAX_QUEUE_WAIT_MS": "2000"}
    server = Server(data / "data", True, data / "server.log", env)
    samples: list[dict[str, float]] = []
    try:
        server.wait_serving()
        with FvsClient(server.address) as client:
            client.enroll(CITIZEN_A, (PHOTOS / "obama.jpg").read_bytes(), create_if_missing=True)
            client.enroll(CITIZEN_B, (PHOTOS / "biden.jpg").read_bytes(), create_if_missing=True)
        driver = Driver(server.address, args.rate)
        next_sample = [0.0]

        def tick(now: float) -> None:
            if now >= next_sample[0]:
                samples.append({"t_s": now, **process_facts(server.pid)})
                next_sample[0] += args.sample_s

        driver.run(seconds, tick)
        time.sleep(1.0)  # let the last calls answer
        samples.append({"t_s": seconds, **process_facts(server.pid)})
    finally:
        exit_status = server.stop()
    summary = summarise(driver.records, samples, max(args.sample_s, 1.0), warmup_s)
    png = out.with_suffix(".png")
    plot(summary, samples, png)
    payload = {
        "benchmark": "soak",
        "machine": machine(),
        "parameters": {"seconds": seconds, "rate_per_s": args.rate, "warmup_s": warmup_s},
        "summary": summary,
        "samples": samples,
        "server_exit_status": exit_status,
        "plot": str(png),
    }
    write_json("soak", payload, out)
    a = summary["after_warmup"]
    print(
        f"{summary['calls']} calls in {seconds:.0f} s: {summary['unexpected']} unexpected, "
        f"{summary['lost']} lost; p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms;"
        f" after warm-up RSS {a['rss_start_mb']:.0f} -> {a['rss_end_mb']:.0f} MiB "
        f"({a['rss_growth_pct']:+.1f}%), fds {a['fds_min']}-{a['fds_max']}, threads "
        f"{a['threads_min']}-{a['threads_max']}; server exit {exit_status}"
    )
    print(f"wrote {out} and {png}")
    return 0 if summary["unexpected"] == 0 and summary["lost"] == 0 and exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
