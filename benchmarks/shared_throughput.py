"""Verify throughput of two servers sharing one PostgreSQL database against one server on the
embedded SQLite store, at the same concurrency, measured in the same run on the same machine
(closed loop: each caller sends its next Verify when the last one answered; callers alternate
between the two servers). Servers run --insecure on loopback (the development system), so the
access rules are read from each store on every call as in production.

    python benchmarks/shared_throughput.py --store postgresql://postgres@127.0.0.1:5432/fvs_tp \
        --concurrency 8 --seconds 20 --out docs/benchmarks/shared_throughput.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.propagation import migrate_all  # noqa: E402
from fvs.api.client import CallFailedError, FvsClient  # noqa: E402
from fvs.config import StoreSettings  # noqa: E402
from fvs.store.crypto import write_new_key  # noqa: E402

CITIZEN = "3100600445635"
PHOTOS = ROOT / "tests" / "data"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path, store: StoreSettings | None) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    cmd = [sys.executable, "-m", "fvs", "serve", "--insecure", "--address", f"127.0.0.1:{port}"]
    cmd += ["--data-dir", str(data_dir)]
    if store is not None:
        cmd += ["--store", str(store.url), "--template-key-file", str(store.key_file())]
    # closed loop: calls queue for a worker instead of being refused as OVERLOADED
    env = {**os.environ, "FVS_MODEL__PROVIDERS": "cpu", "FVS_SERVER__MAX_QUEUE_WAIT_MS": "60000"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    address = f"127.0.0.1:{port}"
    with FvsClient(address, timeout_s=2) as c:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if c.health() == "SERVING":
                    return proc, address
            except CallFailedError:
                pass
            time.sleep(0.2)
    raise TimeoutError("server not SERVING")


def load(addresses: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    probe = (PHOTOS / "obama2.jpg").read_bytes()
    clients = [FvsClient(a, timeout_s=30) for a in addresses]
    done = [0] * concurrency
    failed = [0] * concurrency
    stop = threading.Event()
    reasons: dict[str, int] = {}

    def caller(k: int) -> None:
        n = 0
        while not stop.is_set():
            client = clients[(k + n) % len(clients)]  # alternate between servers
            n += 1
            try:
                client.verify(CITIZEN, probe, "KYC", "CONSENT-1", dt.datetime.now(dt.UTC))
                done[k] += 1
            except CallFailedError as exc:
                failed[k] += 1
                reasons[exc.reason] = reasons.get(exc.reason, 0) + 1

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(concurrency)]
    time.sleep(0.5)
    start_t = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start_t
    for c in clients:
        c.channel.close()
    return {
        "servers": len(addresses),
        "calls_per_s": round(sum(done) / elapsed, 2),
        "failed": sum(failed),
        "failed_by_reason": reasons,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="postgresql://... (an empty database)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shared = StoreSettings(url=args.store, data_dir=work / "shared")
        write_new_key(shared.key_file())
        migrate_all(shared)
        face = (PHOTOS / "obama.jpg").read_bytes()
        for label in ("sqlite-1", "postgresql-2", "sqlite-1 again"):
            if label.startswith("sqlite"):
                procs = [start(work / label.replace(" ", "-"), None)]
            else:
                procs = [start(work / f"pg{k}", shared) for k in range(2)]
            try:
                with FvsClient(procs[0][1], timeout_s=30) as c:
                    c.enroll(CITIZEN, face, create_if_missing=True)
                result = load([a for _, a in procs], args.concurrency, args.seconds)
                results.append({"setup": label, **result})
                print(results[-1], flush=True)
            finally:
                for proc, _ in procs:
                    proc.terminate()
                    proc.wait(30)
    baseline = (results[0]["calls_per_s"] + results[2]["calls_per_s"]) / 2
    out = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "results": results,
        "two_postgresql_over_one_sqlite": round(results[1]["calls_per_s"] / baseline, 3),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
