"""A server over a seeded registry: seconds from process start to health SERVING (model
loaded, template index built from the store, keys checked) and its memory (RSS now, peak).

    python benchmarks/serving.py --data-dir /tmp/fvs-1m-sqlite
    python benchmarks/serving.py --store postgresql://... --template-key-file KEY --data-dir D
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--store")
    p.add_argument("--template-key-file")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "fvs", "serve", "--insecure", "--address", f"127.0.0.1:{port}"]
    cmd += ["--data-dir", args.data_dir]
    if args.store:
        cmd += ["--store", args.store]
    if args.template_key_file:
        cmd += ["--template-key-file", args.template_key_file]
    env = {**os.environ, "FVS_MODEL__PROVIDERS": "cpu"}
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
        result = {
            "command": " ".join(cmd[1:]),
            "serving_s": round(serving_s, 1) if serving_s else None,
            "rss_mib": round(_status_kb(proc.pid, "VmRSS") / 1024, 1),
            "peak_rss_mib": round(_status_kb(proc.pid, "VmHWM") / 1024, 1),
        }
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    index_lines = [ln for ln in out.decode().splitlines() if "template index" in ln]
    result["log"] = index_lines
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if serving_s else 1


if __name__ == "__main__":
    raise SystemExit(main())
