"""Matching core: per-call latency of the template index's lookup-and-score against the raw
limit (a NumPy dot on a row of an in-memory array) measured in the same run, for registries
of 10^4..10^7 synthetic templates; and the batched path's cost per pair against an einsum
over pre-gathered pairs.

    .venv/bin/python benchmarks/matching.py                       # 1e4, 1e5, 1e6
    .venv/bin/python benchmarks/matching.py --sizes 10000000      # memory-mapped, ~20 GB disk
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import latency_stats, machine, write_json
from fvs.citizen_id import complete
from fvs.store.index import TemplateIndex

DIM = 512
MEMMAP_FROM = 5_000_000  # registries this large are memory-mapped


def synthetic_ids(n: int) -> list[str]:
    return [complete(f"{1_000_000_000_00 + k:012d}") for k in range(n)]


def fill(matrix: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    step = 200_000
    for start in range(0, matrix.shape[0], step):
        block = rng.standard_normal((min(step, matrix.shape[0] - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        matrix[start : start + block.shape[0]] = block


def timed_calls(fn, args_list) -> list[int]:  # type: ignore[no-untyped-def]
    clock = time.perf_counter_ns
    out = []
    for args in args_list:
        t0 = clock()
        fn(*args)
        out.append(clock() - t0)
    return out


def bench_size(n: int, calls: int, seed: int, workdir: Path, encoding: str = "f32") -> dict:  # type: ignore[type-arg]
    ids = synthetic_ids(n)
    memmap = n >= MEMMAP_FROM and encoding == "f32"
    build_start = time.perf_counter()
    if memmap:
        index = TemplateIndex("bench@0", DIM, capacity=n, memmap_path=workdir / f"idx{n}")
        fill(index._matrix, seed)
        index._size = n
        index._versions[:n] = 1
        index._rows = {int(c): k for k, c in enumerate(ids)}
    elif encoding != "f32":  # compact rows, filled a block at a time (never n x D float32)
        index = TemplateIndex("bench@0", DIM, capacity=n, encoding=encoding)
        step = 200_000
        for start in range(0, n, step):
            block = np.empty((min(step, n - start), DIM), dtype=np.float32)
            fill(block, seed + start)
            index.put_many(ids[start : start + block.shape[0]], block, [1] * block.shape[0])
    else:
        matrix = np.empty((n, DIM), dtype=np.float32)
        fill(matrix, seed)
        index = TemplateIndex.from_vectors("bench@0", ids, matrix)
    build_s = time.perf_counter() - build_start
    raw = index.matrix if memmap or encoding != "f32" else np.ascontiguousarray(index.matrix)
    rng = np.random.default_rng(seed + 1)
    probe = rng.standard_normal(DIM, dtype=np.float32)
    probe /= np.linalg.norm(probe)
    rows = rng.integers(0, n, size=calls)
    chosen = [ids[r] for r in rows]
    result: dict = {  # type: ignore[type-arg]
        "templates": n,
        "memory_mapped": memmap,
        "encoding": encoding,
        "index_bytes": index.nbytes,
        "build_s": build_s,
    }

    cold = None
    if memmap:
        # Cold: evict the file's pages, then read rows never touched since.
        index._matrix.flush()
        fd = os.open(index._matrix.filename, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        cold_ids = [ids[r] for r in rng.integers(0, n, size=min(2000, calls))]
        cold = latency_stats(timed_calls(index.score, [(c, probe) for c in cold_ids]))
        # Warm: the rows the measured calls will touch are paged in first.
        for c in chosen:
            index.score(c, probe)

    for _ in range(2):  # interleave so both see the same machine state
        raw_ns = timed_calls(np.dot, [(raw[r], probe) for r in rows])
        idx_ns = timed_calls(index.score, [(c, probe) for c in chosen])
    raw_stats, idx_stats = latency_stats(raw_ns), latency_stats(idx_ns)
    result.update(
        raw_dot=raw_stats,
        index=idx_stats,
        median_ratio=idx_stats["median_us"] / raw_stats["median_us"],
        p99_ratio=idx_stats["p99_us"] / raw_stats["p99_us"],
    )
    if cold is not None:
        result["index_cold"] = cold

    # batched: N pairs per call
    batch = 1000
    probes = rng.standard_normal((batch, DIM), dtype=np.float32)
    batch_ids = [ids[r] for r in rng.integers(0, n, size=batch)]
    gathered = np.ascontiguousarray(
        index.matrix[[index._rows[int(c)] for c in batch_ids]], dtype=np.float32
    )
    reps = 50
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        np.einsum("ij,ij->i", gathered, probes)
    einsum_ns = (time.perf_counter_ns() - t0) / (reps * batch)
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        index.score_many(batch_ids, probes)
    many_ns = (time.perf_counter_ns() - t0) / (reps * batch)
    result["batched"] = {
        "pairs_per_call": batch,
        "einsum_pregathered_ns_per_pair": einsum_ns,
        "score_many_ns_per_pair": many_ns,
        "ratio": many_ns / einsum_ns,
    }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--calls", type=int, default=20_000, help="measured calls per size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--encoding", choices=["f32", "f16", "i8"], default="f32", help="index row encoding"
    )
    p.add_argument("--workdir", type=Path, help="where memory-mapped registries go")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fvs-bench-"))
    results = []
    for n in args.sizes:
        results.append(bench_size(n, args.calls, args.seed, workdir, args.encoding))
        r = results[-1]
        print(
            f"{n:>10,} templates{' (mmap)' if r['memory_mapped'] else '':7}  raw dot "
            f"median {r['raw_dot']['median_us']:.2f} us p99 {r['raw_dot']['p99_us']:.2f}  |  "
            f"index median {r['index']['median_us']:.2f} us p99 {r['index']['p99_us']:.2f} "
            f"p99.9 {r['index']['p999_us']:.2f}  |  median x{r['median_ratio']:.2f}  "
            f"batched x{r['batched']['ratio']:.2f}"
            + (
                f"  |  cold median {r['index_cold']['median_us']:.1f} us p99 "
                f"{r['index_cold']['p99_us']:.1f}"
                if "index_cold" in r
                else ""
            ),
            flush=True,
        )
    path = write_json(
        "matching",
        {
            "benchmark": "matching",
            "machine": machine(),
            "parameters": vars(args) | {"dim": DIM},
            "results": results,
        },
        args.out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
