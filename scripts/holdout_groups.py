"""Held-out check of the per-group FMR promise: fit a calibration on half of the people of a
dataset with a groups file, measure it per group on the other half (identity-disjoint, each
group split in halves), both ways, for several seeds; counts are pooled over the splits.

Compares the global table (fmr-v1) with the region-keyed calibration (fmr-region-knn-v1).

    .venv/bin/python scripts/holdout_groups.py ../shared/data/lfw-view1-train/images \\
        --groups ../shared/data/lfw-view1-train/groups.tsv --region east_southeast_asian \\
        --errata ../shared/data/lfw-view1-train/LFW_ERRATA_files.tsv \\
        --alias Joseph_Blatter=Sepp_Blatter --seeds 2 --out docs/eval/buffalo_sc/holdout_groups.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fvs.config import Settings
from fvs.evaluation import metrics as m
from fvs.evaluation.calibration import anchor_grid, fit_calibration
from fvs.evaluation.dataset import Dataset, all_pairs
from fvs.evaluation.embeddings import pair_scores
from fvs.evaluation.groups import ANCHORS, group_report
from fvs.evaluation.regions import fit_region_model
from fvs.evaluation.report import EvalOptions, Evaluation
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import CalibratedMapping, fmr_for_percent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--groups", type=Path, required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--errata", type=Path)
    ap.add_argument("--alias", action="append", default=[])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path(".fvs-cache"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sharpness", type=float, default=2.0, help="of the membership logistic")
    ap.add_argument("--no-progress", action="store_true", help="(always quiet)")
    args = ap.parse_args()
    s = Settings()
    pipeline = FacePipeline.load(s.model, s.pipeline, s.quality, s.score)
    aliases = tuple(tuple(a.split("=", 1)) for a in args.alias)
    ev = Evaluation(
        pipeline,
        EvalOptions(
            dataset=args.dataset,
            errata=args.errata,
            aliases=aliases,  # type: ignore[arg-type]
            cache=args.cache,
            progress=False,
            groups=args.groups,
        ),
    )
    keep = np.array([not ev.errata.excludes(i) for i in ev.dataset.images]) & ev.embedded.ok
    used = np.flatnonzero(keep)
    ids = np.array(ev.dataset.identity)[used]
    for pair in ev.errata.aliases:
        a, b = sorted(pair)
        ids[ids == b] = a
    names, person = np.unique(ids, return_inverse=True)
    groups = [ev.image_groups()[k] for k in used]
    in_region = np.array([g == args.region for g in groups])
    person_in = np.zeros(names.size, dtype=bool)
    person_in[person[in_region]] = True
    vectors = ev.embedded.vectors[used]
    percents, fmrs = anchor_grid()
    info = pipeline.info
    pooled: dict[str, dict[str, Any]] = {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        half = np.zeros(names.size, dtype=int)
        for members in (person_in, ~person_in):
            p = np.flatnonzero(members)
            rng.shuffle(p)
            half[p[: p.size // 2]] = 1
        for h in (0, 1):
            cal, test = np.flatnonzero(half[person] == h), np.flatnonzero(half[person] != h)
            sub = Dataset(Path("."), [str(k) for k in cal], [str(x) for x in person[cal]])
            i, j, gen = all_pairs(sub, np.ones(cal.size, dtype=bool), ev.errata)
            sc = pair_scores(vectors[cal], i, j)
            common = dict(
                model_id=info.model_id,
                recognizer_sha256=info.recognizer_sha256,
                detector_sha256=info.detector_sha256,
                dataset=f"half {h} seed {seed}",
            )
            plain = fit_calibration(sc[gen], sc[~gen], **common)  # type: ignore[arg-type]
            region = fit_region_model(
                vectors[cal],
                person[cal],
                in_region[cal],
                i[~gen],
                j[~gen],
                sc[~gen],
                percents,
                fmrs,
                region=args.region,
                source="holdout",
                seed=seed,
                sharpness=args.sharpness,
            )
            keyed = fit_calibration(sc[gen], sc[~gen], regions=region, **common)  # type: ignore[arg-type]
            tsub = Dataset(Path("."), [str(k) for k in test], [str(x) for x in person[test]])
            ti, tj, tgen = all_pairs(tsub, np.ones(test.size, dtype=bool), ev.errata)
            for method, calibration in (("fmr-v1", plain), ("fmr-region-knn-v1", keyed)):
                rep = group_report(
                    CalibratedMapping(calibration),
                    vectors[test],
                    [groups[k] for k in test],
                    ti,
                    tj,
                    tgen,
                )
                for cell in [*rep["cells"], rep["all"]]:
                    key = f"{method}|{cell['cell']}"
                    acc = pooled.setdefault(
                        key, {"imp": 0, "gen": 0, "acc": np.zeros(5), "hits": np.zeros(5)}
                    )
                    acc["imp"] += cell["impostor_pairs"]
                    acc["gen"] += cell["genuine_pairs"]
                    for k, a in enumerate(cell["anchors"]):
                        acc["acc"][k] += a["accepted"]
                        if a["tar"] is not None:
                            acc["hits"][k] += a["tar"] * cell["genuine_pairs"]
            print(f"seed {seed} half {h}: fitted on {cal.size} photos, measured on {test.size}")
    out: dict[str, Any] = {"seeds": args.seeds, "region": args.region, "cells": []}
    print(
        f"{'method | cell':<52}"
        + "".join(f"{f'{a:.0f} %':>24}" for a in ANCHORS[1:4])
        + f"{'TAR@80':>9}"
    )
    for key, acc in pooled.items():
        row: dict[str, Any] = {
            "cell": key,
            "impostor_pairs": acc["imp"],
            "genuine_pairs": acc["gen"],
        }
        label = f"{key} ({acc['imp']:,})"
        line = f"{label:<52}"
        anchors = []
        for k, a in enumerate(ANCHORS):
            claim = fmr_for_percent(a)
            lo, hi = m.wilson(int(acc["acc"][k]), int(acc["imp"]))
            ratio = acc["acc"][k] / acc["imp"] / claim
            anchors.append(
                {
                    "percent": a,
                    "claimed_fmr": claim,
                    "accepted": int(acc["acc"][k]),
                    "ratio": ratio,
                    "ratio_ci": [lo / claim, hi / claim],
                    "tar": acc["hits"][k] / acc["gen"] if acc["gen"] else None,
                }
            )
            if 1 <= k <= 3:
                line += f"{f'{ratio:.2f}x [{lo / claim:.2f}-{hi / claim:.2f}]':>24}"
        row["anchors"] = anchors
        tar = anchors[3]["tar"]
        line += f"{(f'{100 * tar:.2f}' if tar is not None else 'n/a'):>9}"
        print(line)
        out["cells"].append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
