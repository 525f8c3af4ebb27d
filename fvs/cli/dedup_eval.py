"""`fvs eval-dedup`: the runs, the report and the console table (fvs/evaluation/dedup.py has
the method)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from fvs.dedup.rule import DuplicateRule, expected_fpir
from fvs.evaluation import dedup as d
from fvs.evaluation.dataset import Dataset
from fvs.evaluation.embeddings import embed_dataset
from fvs.pipeline.score import CalibratedMapping
from fvs.store.search import SearchParams
from fvs.store.synthetic import template_chunk


def _label(n: int, kind: str) -> str:
    return "no distractors" if n == 0 else f"+{n:,} {kind} distractors"


def _bar(label: str, show: bool) -> Callable[[Sequence[int]], Sequence[int]]:
    def wrap(steps: Sequence[int]) -> Sequence[int]:
        bar: Sequence[int] = tqdm(
            steps, desc=label, unit="search", disable=not show, mininterval=1.0
        )
        return bar

    return wrap


def _face_like(args: argparse.Namespace, evaluation: Any) -> tuple[d.FaceLike, np.ndarray]:
    folder = args.distractor_photos
    dataset = Dataset.scan_population(folder)
    embedded = embed_dataset(evaluation.pipeline, dataset, args.cache, not args.no_progress)
    vectors = embedded.vectors[embedded.ok]
    return d.FaceLike.fit(vectors, str(folder)), vectors


def run(
    args: argparse.Namespace,
    evaluation: Any,
    s: Any,
    mapping: CalibratedMapping,
    kinds: list[str],
) -> int:
    photos = d.Photos.of(
        evaluation.dataset, evaluation.embedded.vectors, evaluation.embedded.ok, evaluation.errata
    )
    info = evaluation.pipeline.info
    dim = photos.vectors.shape[1]
    encoding = s.store.template_encoding
    params = SearchParams(kind=args.search_kind)
    fmrs = d.sweep_fmrs()
    weighting = DuplicateRule.from_mapping(mapping, 1e-6)  # any max_fmr: only its weights
    face_like, real_others = (
        _face_like(args, evaluation) if args.distractor_photos is not None else (None, None)
    )
    progress = not args.no_progress
    runs: list[dict[str, Any]] = []
    curves: dict[str, list[dict[str, Any]]] = {}
    plan = [(0, "none")] if 0 in args.distractors else []
    for k in kinds:
        sizes = {n for n in args.distractors if n > 0}
        if k == "real" and face_like is not None:  # as many real photos as there are
            sizes = {min(n, face_like.fitted_on) for n in sizes}
        plan += [(n, k) for n in sorted(sizes)]
    for n, kind in plan:
        start = time.perf_counter()
        templates = d.gallery(
            info.model_id, dim, encoding, n, kind if n else "isotropic", args.seed, face_like
        )
        filled = time.perf_counter() - start
        searches, index = d.run_searches(
            photos,
            templates,
            weighting,
            params,
            args.candidates,
            args.seed,
            progress=_bar(_label(n, kind), progress),
        )
        points = d.sweep(searches, mapping, fmrs)
        label = _label(n, kind)
        curves[label] = points
        runs.append(
            {
                "distractors": n,
                "distractor_kind": kind if n else None,
                "search_index": {
                    "kind": index.kind,
                    "build_s": index.build_seconds,
                    "rows": index.covered,
                },
                "gallery_fill_s": filled,
                "run_s": time.perf_counter() - start,
                "truncated_any": any(p["truncated_searches"] for p in points),
                "at": [p for p in points if _reported(p["max_fmr"])],
                "sweep": _columns(points),
            }
        )
        del templates, index
    base = runs[0]["at"] if runs and runs[0]["distractors"] == 0 else []
    check: dict[str, Any] = {}
    if real_others is not None and face_like is not None:
        m = real_others.shape[0]
        check = d.impostor_check(
            photos.vectors,
            {
                f"real photos ({args.distractor_photos})": real_others.astype(np.float32),
                "face-like (Gaussian fitted on them)": face_like.sample(0, m, args.seed + 1),
                "isotropic (registry synthetic)": template_chunk(0, m, dim, args.seed + 1),
            },
            mapping,
        )
    report = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "method": (
            "every acquired, non-excluded photo enrolled in a seeded random order under its "
            "own citizen ID, searched first against those enrolled (SearchIndex + "
            "DuplicateRule as served); mated search missed when no photo of its person is "
            "returned at or above its bar (FNIR); non-mated search a false alarm when any "
            "candidate is (FPIR) (ISO/IEC 19795-1)"
        ),
        "dataset": str(args.dataset),
        "model": info.model_id,
        "calibration": mapping.id,
        "calibration_dataset": mapping.calibration.dataset,
        "template_encoding": encoding,
        "search_params": vars(params),
        "seed": args.seed,
        "candidates": args.candidates,
        "photos": len(photos.images),
        "people": int(np.unique(photos.person).size),
        "excluded_by_errata": photos.excluded,
        "not_acquired": photos.not_acquired,
        "aliases": sorted(sorted(a) for a in evaluation.errata.aliases),
        "targets": {"fnir_max": d.TARGET_FNIR, "fpir_max": d.TARGET_FPIR},
        "meeting_targets_without_distractors": [
            p["max_fmr"] for p in (curves["no distractors"] if base else []) if p["meets_targets"]
        ],
        "expected_fpir": {
            f"{f:.0e}": {
                "enrolled_1e5": expected_fpir(f, 10**5),
                "enrolled_1e7": expected_fpir(f, 10**7),
            }
            for f in d.REPORT_FMRS
        },
        "distractor_photos": {"folder": face_like.source, "embeddings": face_like.fitted_on}
        if face_like is not None
        else None,
        "impostor_check": check,
        "runs": runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "dedup_report.json"
    path.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    name = args.name or "/".join(args.dataset.resolve().parts[-2:])
    plot = d.write_det(args.out, curves, f"{info.model_id} on {name}", d.REPORT_FMRS)
    _print(report)
    print(f"report {path}; plot {plot.name}")
    return 0


def _columns(points: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The sweep as columns (one list per figure), to keep the report small."""
    keys = ("max_fmr", "fnir", "fpir", "missed", "false_alarms", "truncated_searches")
    return {k: [p[k] for p in points] for k in keys}


def _reported(fmr: float) -> bool:
    return any(math.isclose(fmr, f) for f in d.REPORT_FMRS)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _print(report: dict[str, Any]) -> None:
    print(
        f"model {report['model']}  photos {report['photos']} ({report['people']} people, "
        f"{len(report['not_acquired'])} not acquired, {len(report['excluded_by_errata'])} "
        f"excluded)  calibration {report['calibration']}"
    )
    for r in report["runs"]:
        first = r["at"][0]
        print(
            f"{_label(r['distractors'], r['distractor_kind'] or '')}: {first['mated_searches']} "
            f"mated, {first['non_mated_searches']} non-mated searches ({r['search_index']['kind']}"
            f", {r['run_s']:.0f} s)"
        )
        print(f"  {'max_fmr':>8} {'FNIR':>9} {'FPIR':>9} {'predicted':>10}")
        for p in r["at"]:
            print(
                f"  {p['max_fmr']:>8.0e} {_pct(p['fnir']):>9} {_pct(p['fpir']):>9} "
                f"{_pct(p['predicted_fpir_at_run_gallery']):>10}"
                + ("  meets targets" if p["meets_targets"] else "")
                + (f"  ({p['truncated_searches']} truncated)" if p["truncated_searches"] else "")
            )
    for name, c in report["impostor_check"].items():
        fmr = "  ".join(f"{k}: {v:.1e}" for k, v in c["fmr_at_bar"].items())
        print(f"impostors vs {name}: mean {c['similarity_mean']:.3f}, {fmr}")
