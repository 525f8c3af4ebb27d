"""What making one audit record durable costs, by method, on the disk under ``--dir``: the
flush a lone Verify waits for (issue 11: "if a lone caller's flush is what costs, measure the
alternatives"). Each method appends one 700-byte record and makes it durable, then anchors
the head (a 256-byte slot rewritten in place), as `fvs.audit.log` does; methods alternate in
rounds, so drift hits them alike. The baseline is the method FVS uses.

* ``fsync`` (FVS): ``write`` to the O_APPEND log, ``fsync``; head ``pwrite`` + ``fdatasync``.
* ``fdatasync``: the same with ``fdatasync`` on the log (the size still changes, so ext4 still
  commits its journal).
* ``o_dsync``: both files opened O_DSYNC, every write durable when it returns.
* ``preallocated``: the log preallocated (``posix_fallocate``) and written in place, so
  ``fdatasync`` need not commit metadata; the reader must then find the end by the chain,
  not by the file size.
* ``log_only``: the log's ``fsync`` without the head: what dropping the truncation anchor
  would save (FVS keeps it).
* ``none``: no flush at all (durability given up; the floor).

    .venv/bin/python benchmarks/audit_flush.py [--dir DATA_DIR] [--records 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, write_json

RECORD = b'{"seq":1,' + b'"x":"' + b"a" * 680 + b'"}\n'
SLOT = b"h" * 256


class Files:
    def __init__(self, folder: Path, log_flags: int, head_flags: int, preallocate: bool):
        append = 0 if preallocate else os.O_APPEND
        self.log = os.open(folder / "log", os.O_RDWR | os.O_CREAT | append | log_flags, 0o600)
        self.head = os.open(folder / "head", os.O_RDWR | os.O_CREAT | head_flags, 0o600)
        os.pwrite(self.head, b"\0" * 512, 0)
        os.fsync(self.head)
        if preallocate:
            os.posix_fallocate(self.log, 0, 64 << 20)
            os.fsync(self.log)
        self.offset = 0
        self.slot = 0

    def anchor(self, sync: bool) -> None:
        self.slot ^= 1
        os.pwrite(self.head, SLOT, 256 * self.slot)
        if sync:
            os.fdatasync(self.head)

    def close(self) -> None:
        os.close(self.log)
        os.close(self.head)


def _fsync(f: Files) -> None:
    os.write(f.log, RECORD)
    os.fsync(f.log)
    f.anchor(True)


def _fdatasync(f: Files) -> None:
    os.write(f.log, RECORD)
    os.fdatasync(f.log)
    f.anchor(True)


def _o_dsync(f: Files) -> None:
    os.write(f.log, RECORD)
    f.anchor(False)


def _preallocated(f: Files) -> None:
    os.pwrite(f.log, RECORD, f.offset)
    f.offset += len(RECORD)
    os.fdatasync(f.log)
    f.anchor(True)


def _log_only(f: Files) -> None:
    os.write(f.log, RECORD)
    os.fsync(f.log)


def _none(f: Files) -> None:
    os.write(f.log, RECORD)
    f.anchor(False)


METHODS: dict[str, tuple[Callable[[Files], None], int, bool]] = {
    "fsync": (_fsync, 0, False),
    "fdatasync": (_fdatasync, 0, False),
    "o_dsync": (_o_dsync, os.O_DSYNC, False),
    "preallocated": (_preallocated, 0, True),
    "log_only": (_log_only, 0, False),
    "none": (_none, 0, False),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=Path("."), help="a folder on the disk to test")
    p.add_argument("--records", type=int, default=400)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in METHODS}
    for k in range(args.rounds):
        order = list(METHODS) if k % 2 == 0 else list(METHODS)[::-1]
        for name in order:
            op, flags, preallocate = METHODS[name]
            with tempfile.TemporaryDirectory(dir=args.dir) as folder:
                files = Files(Path(folder), flags, flags, preallocate)
                try:
                    for _ in range(20):
                        op(files)
                    for _ in range(args.records):
                        t = time.perf_counter()
                        op(files)
                        samples[name].append((time.perf_counter() - t) * 1e3)
                finally:
                    files.close()
    base = statistics.median(samples["fsync"])
    results = {}
    print(f"{'method':14s} {'p50 ms':>8s} {'p99 ms':>8s} {'vs fsync':>9s}")
    for name, values in samples.items():
        values.sort()
        p50 = statistics.median(values)
        p99 = values[int(0.99 * (len(values) - 1))]
        results[name] = {"p50_ms": p50, "p99_ms": p99, "p50_over_fsync": p50 / base}
        print(f"{name:14s} {p50:8.3f} {p99:8.3f} {p50 / base:8.2f}x")
    payload = {
        "benchmark": "audit_flush",
        "machine": machine(),
        "parameters": {k: str(v) for k, v in vars(args).items()},
        "results": results,
    }
    print(f"wrote {write_json('audit_flush', payload, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
