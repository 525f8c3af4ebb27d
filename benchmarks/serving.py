"""A server over a seeded registry: seconds from process start to health SERVING (model
loaded, template index built from the store or its snapshot, keys checked) and its memory
(RSS now, peak).

    python benchmarks/serving.py --data-dir /tmp/fvs-1m-sqlite
    python benchmarks/serving.py --store postgresql://... --template-key-file KEY --data-dir D

``--compare`` starts the server three times in one run: snapshots off; snapshots on without a
snapshot (a full load, then the snapshot written in the background, waited for at the stop);
and from that snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fvs.api.client import CallFailedError, FvsClient


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run(args: argparse.Namespace, env_extra: dict[str, str]) -> dict[str, object]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "fvs", "serve", "--insecure", "--address", f"127.0.0.1:{port}"]
    cmd += ["--data-dir", args.data_dir]
    if args.store:
        cmd += ["--store", args.store]
    if args.template_key_file:
        cmd += ["--template-key-file", args.template_key_file]
    env = {**os.environ, "FVS_MODEL__PROVIDERS": "cpu", **env_extra}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    serving_s = None
    try:
        with FvsClient(f"127.0.0.1:{port}", timeout_s=2) as client:
            while time.perf_counter() - start < args.timeout:
                if proc.poll() is not None:
                    raise SystemExit(proc.stdout.read().decode() if proc.stdout else "exited")
                try:
                    if client.health() == "SERVING":
                        serving_s = time.perf_counter() - start
                        break
                except CallFailedError:
                    pass
                time.sleep(0.2)
        result: dict[str, object] = {
            "command": " ".join(cmd[1:]),
            "env": env_extra,
            "serving_s": round(serving_s, 1) if serving_s else None,
            "rss_mib": round(_status_kb(proc.pid, "VmRSS") / 1024, 1),
            "peak_rss_mib": round(_status_kb(proc.pid, "VmHWM") / 1024, 1),
        }
    finally:
        proc.terminate()  # a graceful stop: a snapshot being written is finished first
        out, _ = proc.communicate(timeout=args.timeout)
    wanted = ("template index", "snapshot")
    result["log"] = [ln for ln in out.decode().splitlines() if any(w in ln for w in wanted)]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--store")
    p.add_argument("--template-key-file")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--compare", action="store_true", help="off, first start, from snapshot")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if args.compare:
        shutil.rmtree(Path(args.data_dir) / "cache", ignore_errors=True)
        results = [
            {"case": "snapshots off", **run(args, {"FVS_STORE__INDEX_SNAPSHOT": "false"})},
            {"case": "no snapshot yet", **run(args, {})},
            {"case": "from the snapshot", **run(args, {})},
        ]
        ok = all(r["serving_s"] for r in results)
        text = json.dumps(results, indent=2)
    else:
        result = run(args, {})
        ok = bool(result["serving_s"])
        text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
