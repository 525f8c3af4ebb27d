"""Duplicate search index (issue 9): recall against exact search at the duplicate threshold,
single-query latency, memory and build time of fvs.store.search.SearchIndex at 10^5..10^7
templates.

The gallery is a TemplateIndex (the registry's encoding, i8 by default) of synthetic
templates (fvs.store.synthetic.template_chunk, written in chunks: never an n x 512 float32
matrix) with real LFW faces planted among them: for every person with at least two photos one
photo is planted, another is the query. Exact truth: every gallery row whose similarity (from
the stored row, as the search re-scores) reaches the pair's DuplicateRule bar at ``max_fmr``;
recall is the fraction of those pairs a SearchIndex search returns at or above the bar.
Latency: one query per call, ``search(probe, k)`` as the service calls it (faiss, then exact
re-scoring of the shortlist from the template index), each configuration against the exact
flat index in the same run where both fit.

    .venv/bin/python benchmarks/dedup_search.py --sizes 100000 1000000
    .venv/bin/python benchmarks/dedup_search.py --sizes 10000000 --configs ivf
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import latency_stats, machine, write_json
from fvs.dedup.rule import DuplicateRule
from fvs.evaluation.dedup import memberships, pair_weights
from fvs.store.index import TemplateIndex
from fvs.store.search import SearchIndex, SearchParams
from fvs.store.synthetic import template_chunk

DIM = 512
CHUNK = 65536
PLANT_BASE = 8_000_000_000_000  # planted faces' citizen IDs; synthetic ones from 1e12


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def lfw_pairs(dataset: Path, cache: Path, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(planted, queries): for each person with >= 2 acquired photos, two of them."""
    from fvs.cli.common import settings
    from fvs.evaluation.dataset import Dataset
    from fvs.evaluation.embeddings import embed_dataset
    from fvs.pipeline.pipeline import FacePipeline

    s = settings()
    pipeline = FacePipeline.load(s.model, s.pipeline, s.quality, s.score)
    ds = Dataset.scan(dataset)
    emb = embed_dataset(pipeline, ds, cache, progress=False)
    people: dict[str, list[int]] = {}
    for k, (person, ok) in enumerate(zip(ds.identity, emb.ok, strict=True)):
        if ok:
            people.setdefault(person, []).append(k)
    rng = np.random.default_rng(seed)
    names = sorted(p for p, ks in people.items() if len(ks) >= 2)
    names = [names[i] for i in rng.permutation(len(names))[:limit]]
    planted = np.stack([emb.vectors[people[n][0]] for n in names])
    queries = np.stack([emb.vectors[people[n][1]] for n in names])
    return planted.astype(np.float32), queries.astype(np.float32)


def build_gallery(
    n: int, planted: np.ndarray, encoding: str, seed: int
) -> tuple[TemplateIndex, np.ndarray, float]:
    """n synthetic templates with the planted faces spread among them; returns the index,
    the planted rows and the seconds taken."""
    start = time.perf_counter()
    index = TemplateIndex("bench@0", DIM, capacity=n + planted.shape[0], encoding=encoding)
    chunks = max(1, -(-n // CHUNK))
    per_chunk = np.array_split(np.arange(planted.shape[0]), chunks)
    rows = np.empty(planted.shape[0], dtype=np.int64)
    for c, first in enumerate(range(0, max(n, 1), CHUNK)):
        count = min(CHUNK, n - first)
        if count > 0:
            block = template_chunk(first, count, DIM, seed)
            ids = [f"{1_000_000_000_000 + first + k:013d}" for k in range(count)]
            index.put_many(ids, block, [1] * count)
        mine = per_chunk[c]
        if mine.size:
            rows[mine] = np.arange(index.rows_used, index.rows_used + mine.size)
            index.put_many(
                [f"{PLANT_BASE + int(k):013d}" for k in mine], planted[mine], [1] * mine.size
            )
    return index, rows, time.perf_counter() - start


def exact_truth(
    index: TemplateIndex,
    rows: np.ndarray,
    queries: np.ndarray,
    rule: DuplicateRule,
    synthetic_sample: int,
) -> dict[str, Any]:
    """Pairs at or above the bar by brute force: over the planted rows for every query, and
    over every synthetic row for ``synthetic_sample`` queries (their best similarity is
    reported: isotropic templates sit far below any duplicate bar)."""
    planted = index.gather(rows)
    sims = queries @ planted.T  # (Q, P)
    m_q, m_p = memberships(rule, queries), memberships(rule, planted)
    truth = []
    for i, s in enumerate(sims):
        if m_q is None or m_p is None:
            bars = np.full(s.size, rule.thresholds[0])
        else:  # rule.bars, with the memberships computed once
            bars = pair_weights(rule, float(m_q[i]), m_p) @ np.asarray(rule.thresholds)
        truth.append(set(rows[s >= bars].tolist()))
    sample = queries[:synthetic_sample]
    best = np.full(sample.shape[0], -np.inf, dtype=np.float32)
    synthetic_above = 0
    for start in range(0, index.rows_used, CHUNK):
        block = index.vectors(start, min(start + CHUNK, index.rows_used))
        s = sample @ block.T  # (q, B)
        keep = ~np.isin(np.arange(start, start + block.shape[0]), rows)
        s = s[:, keep]
        if s.size:
            best = np.maximum(best, s.max(axis=1))
            synthetic_above += int(np.count_nonzero(s >= rule.floor))
    return {
        "truth": truth,
        "pairs_at_bar": int(sum(len(t) for t in truth)),
        "synthetic_checked_queries": int(sample.shape[0]),
        "synthetic_rows_at_floor": synthetic_above,
        "synthetic_best_similarity": float(best.max()) if best.size else None,
        "floor": rule.floor,
    }


def measure(
    index: TemplateIndex,
    params: SearchParams,
    queries: np.ndarray,
    truth: list[set[int]],
    rule: DuplicateRule,
    k: int,
    repeats: int,
) -> dict[str, Any]:
    gc.collect()
    rss0 = rss_bytes()
    search = SearchIndex(index, params).build()
    found = hit = top1 = 0
    samples, cpu = [], []
    for q, t in zip(queries, truth, strict=True):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        cands = search.search(q, k)
        samples.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
        if not cands:
            continue
        vecs = index.gather(np.array([c.row for c in cands], dtype=np.int64))
        sims = np.array([c.similarity for c in cands])
        at = {c.row for c, d in zip(cands, rule.is_duplicate(q, vecs, sims), strict=True) if d}
        found += len(t)
        hit += len(t & at)
        top1 += int(not t or cands[0].row in t)
    for _ in range(repeats - 1):  # the recall pass was the first
        for q in queries:
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            search.search(q, k)
            samples.append(time.perf_counter_ns() - t0)
            cpu.append(time.thread_time_ns() - c0)
    out = {
        "params": vars(params),
        "kind": search.kind,
        "nlist": int(search._index.nlist) if search.kind == "ivf" else None,
        "nprobe": int(search._index.nprobe) if search.kind == "ivf" else None,
        "build_s": search.build_seconds,
        "search_index_bytes": search.nbytes,
        "rss_growth_bytes": rss_bytes() - rss0,
        "recall_at_bar": hit / found if found else None,
        "pairs_at_bar": found,
        "pairs_returned": hit,
        "queries_with_duplicate_first": top1 / len(queries),
        "latency": latency_stats(samples),
        # CPU time of the searching thread: what the search costs without the other tenants
        # of the 2 cores (wall-clock p99 here is mostly their scheduling)
        "cpu_time": latency_stats(cpu),
        "load_average_1min": os.getloadavg()[0],  # other tenants of the 2 cores
    }
    del search
    gc.collect()
    return out


def configs(n: int, which: list[str], ivf: list[str]) -> list[SearchParams]:
    out = []
    if "flat" in which and n <= 2_000_000:
        out.append(SearchParams(kind="flat"))
    if "pq" in which:
        out.append(SearchParams(kind="pq"))
    if "ivf" in which:
        out.append(SearchParams(kind="ivf"))  # the defaults
        for spec in ivf:
            nlist, nprobe = (int(x) for x in spec.split(":"))
            out.append(SearchParams(kind="ivf", nlist=nlist, nprobe=nprobe))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--configs", nargs="+", default=["flat", "pq"], choices=["flat", "pq", "ivf"])
    p.add_argument(
        "--ivf", nargs="*", default=[], metavar="NLIST:NPROBE", help="extra IVF settings"
    )
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="search threads")
    p.add_argument("--encoding", choices=["f32", "f16", "i8"], default="i8")
    p.add_argument("--max-fmr", type=float, default=1e-6, help="the duplicate bar")
    p.add_argument("--k", type=int, default=10, help="candidates a search returns")
    p.add_argument("--queries", type=int, default=400, help="planted pairs (queries)")
    p.add_argument(
        "--synthetic-truth",
        type=int,
        default=100,
        help="queries checked by brute force against every synthetic row",
    )
    p.add_argument(
        "--repeats", type=int, default=2, help="latency passes (the recall pass is the first)"
    )
    p.add_argument("--dataset", type=Path, default=Path("../shared/data/lfw-view1-train/images"))
    p.add_argument("--cache", type=Path, default=Path(".fvs-cache"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--flat-queries",
        type=int,
        default=60,
        help="queries the flat baseline runs above 200,000 templates (it scans them all)",
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    from fvs.cli.common import settings
    from fvs.pipeline.pipeline import FacePipeline

    s = settings()
    mapping = FacePipeline.load(s.model, s.pipeline, s.quality, s.score).mapping
    assert mapping is not None
    rule = DuplicateRule.from_mapping(mapping, args.max_fmr)
    planted, queries = lfw_pairs(args.dataset, args.cache, args.queries, args.seed)
    results = []
    for n in args.sizes:
        rss0 = rss_bytes()
        index, rows, fill_s = build_gallery(n, planted, args.encoding, args.seed)
        truth = exact_truth(index, rows, queries, rule, args.synthetic_truth)
        row: dict[str, Any] = {
            "templates": index.rows_used,
            "synthetic": n,
            "planted": int(rows.size),
            "encoding": args.encoding,
            "template_index_bytes": index.nbytes,
            "template_index_rss_bytes": rss_bytes() - rss0,
            "fill_s": fill_s,
            **{k: v for k, v in truth.items() if k != "truth"},
            "configs": [],
        }
        baseline = None
        for params in configs(n, args.configs, args.ivf):
            for threads in args.threads:
                pp = SearchParams(**{**vars(params), "search_threads": threads})
                few = pp.kind == "flat" and n > 200_000
                count = args.flat_queries if few else len(queries)
                r = measure(
                    index, pp, queries[:count], truth["truth"][:count], rule, args.k, args.repeats
                )
                r["queries"] = count
                if baseline is None and r["kind"] == "flat" and threads == args.threads[0]:
                    baseline = r["latency"]
                if baseline is not None:
                    r["p50_ratio_to_flat"] = r["latency"]["median_us"] / baseline["median_us"]
                    r["p99_ratio_to_flat"] = r["latency"]["p99_us"] / baseline["p99_us"]
                r["rss_process_bytes"] = rss_bytes()
                row["configs"].append(r)
                lat, cpu = r["latency"], r["cpu_time"]
                print(
                    f"{n:>10,} {r['kind']:>4} nlist {r['nlist']} nprobe {r['nprobe']} threads "
                    f"{threads}: recall {r['recall_at_bar']} ({r['pairs_returned']}/"
                    f"{r['pairs_at_bar']}) p50 {lat['median_us'] / 1e3:.2f} ms p99 "
                    f"{lat['p99_us'] / 1e3:.2f} ms (CPU p50 {cpu['median_us'] / 1e3:.2f} p99 "
                    f"{cpu['p99_us'] / 1e3:.2f}) build {r['build_s']:.1f} s index "
                    f"{r['search_index_bytes'] / 2**20:.0f} MiB rss {rss_bytes() / 2**30:.2f} GiB",
                    flush=True,
                )
        results.append(row)
        del index
        gc.collect()
    path = write_json(
        "dedup_search",
        {
            "benchmark": "dedup_search",
            "machine": machine(),
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            | {"dim": DIM, "bars": list(rule.thresholds)},
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "results": results,
        },
        args.out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
