"""The demographic differential: does the score's FMR promise hold for each group of faces?

Groups come from a file read at evaluation time only (never by the server):
- ``identity<TAB>group`` lines (LFW ``groups.tsv``): identities not listed join ``default``;
- a CSV with a ``file`` column and a group column (UTKFace ``labels.csv``, column ``race``):
  every listed photo is its own identity, so the pairs are impostor pairs only.

For each group and each pair of groups the report gives the FMR measured at every calibration
anchor against the FMR the score claims there, with 95 % Wilson intervals and the number of
pairs, an extreme-value (GPD) tail estimate where few pairs pass an anchor, the similarity
threshold for each FMR inside the group, TAR at fixed FMR and at the anchors (groups with
genuine pairs), and the max/min FMR ratio across groups.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fvs.evaluation import metrics as m
from fvs.evaluation.embeddings import pair_scores
from fvs.pipeline.score import CalibratedMapping, fmr_for_percent

ANCHORS = (20.0, 40.0, 60.0, 80.0, 100.0)
TARGET_FMRS = (1e-2, 1e-3, 1e-4, 1e-5)
TAIL_MIN_ACCEPTED = 10  # below this many accepted pairs, also give the tail estimate


@dataclass(frozen=True)
class GroupLabels:
    by_key: dict[str, str]  # identity -> group, or relative photo path -> group
    photos: bool  # True: keys are photos, each its own identity (impostor pairs only)
    default: str | None  # group of unlisted identities (identity files only)

    def group_of(self, key: str) -> str | None:
        return self.by_key.get(key, self.default)


def read_groups(path: Path, column: str = "race", default: str = "other") -> GroupLabels:
    """An identity->group TSV, or a labels CSV of single photos (``file`` + ``column``)."""
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    if "," in first and "file" in [c.strip() for c in first.split(",")]:
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or column not in rows[0]:
            raise ValueError(f"{path}: no column {column!r} (have {', '.join(rows[0] or [])})")
        return GroupLabels({r["file"]: r[column] for r in rows if r[column]}, True, None)
    by_key: dict[str, str] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[0].strip() or not cols[1].strip():
            raise ValueError(f"{path}:{line_no}: expected identity<TAB>group")
        by_key[cols[0].strip()] = cols[1].strip()
    return GroupLabels(by_key, False, default)


def pair_percents(
    mapping: CalibratedMapping,
    vectors: npt.NDArray[np.float32],
    i: npt.NDArray[np.intp],
    j: npt.NDArray[np.intp],
    similarity: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """The match score the server would return for each pair (i, j) of rows of ``vectors``."""
    if mapping.regions is None:
        return mapping.percents(similarity)
    membership = mapping.regions.membership(vectors)
    return mapping.regions.percents_of_pairs(similarity, membership[i], membership[j])


def tail_estimate(scores: npt.NDArray[np.float64], at: float) -> dict[str, Any] | None:
    """P(score >= at) from a generalised Pareto fit of the highest scores (the top 2 %, at
    least 50): ``estimate`` and how many decades beyond 1 / n it extrapolates."""
    from scipy.stats import genpareto  # noqa: PLC0415

    n = scores.size
    n_top = max(50, int(0.02 * n))
    if n < 200 or n_top >= n:
        return None
    ordered = np.sort(scores)[::-1]
    u = float(ordered[n_top])
    excess = ordered[:n_top] - u
    if np.ptp(excess) <= 0:
        return None
    shape, _, scale = genpareto.fit(excess, floc=0.0)
    rate = n_top / n
    estimate = float(rate * genpareto.sf(at - u, shape, loc=0.0, scale=scale)) if at > u else None
    return {
        "estimate": estimate,
        "exceedances": n_top,
        "shape": float(shape),
        "scale": float(scale),
        "threshold": u,
        "decades_beyond_data": max(0.0, math.log10(1.0 / (n * estimate))) if estimate else None,
    }


def _anchor_rows(
    percents: npt.NDArray[np.float64], genuine_percents: npt.NDArray[np.float64]
) -> list[dict[str, Any]]:
    n = percents.size
    rows = []
    for anchor in ANCHORS:
        claim = fmr_for_percent(anchor)
        accepted = int(np.count_nonzero(percents >= anchor))
        lo, hi = m.wilson(accepted, n)
        row: dict[str, Any] = {
            "percent": anchor,
            "claimed_fmr": claim,
            "impostor_pairs": n,
            "accepted": accepted,
            "measured_fmr": accepted / n if n else None,
            "fmr_ci": [lo, hi] if n else None,
            "ratio": accepted / n / claim if n else None,
            "ratio_ci": [lo / claim, hi / claim] if n else None,
            "tar": float(np.mean(genuine_percents >= anchor)) if genuine_percents.size else None,
        }
        if n and accepted < TAIL_MIN_ACCEPTED:
            tail = tail_estimate(percents, anchor)
            if tail is not None and tail["estimate"] is not None:
                tail["ratio"] = tail["estimate"] / claim
            row["tail"] = tail
        rows.append(row)
    return rows


def _cell(
    name: str,
    imp_sim: npt.NDArray[np.float64],
    imp_pct: npt.NDArray[np.float64],
    gen_sim: npt.NDArray[np.float64],
    gen_pct: npt.NDArray[np.float64],
) -> dict[str, Any]:
    thresholds = []
    for fmr in TARGET_FMRS:
        op = m.tar_at_fmr(gen_sim, imp_sim, fmr)
        thresholds.append(
            {
                "target_fmr": fmr,
                "similarity_threshold": op.threshold,
                "score_threshold": m.threshold_at_fmr(imp_pct, fmr),
                "tar": op.tar if gen_sim.size and op.threshold is not None else None,
                "tar_ci": list(op.tar_ci) if gen_sim.size and op.tar_ci else None,
                "note": None
                if op.threshold is not None
                else f"needs at least {math.ceil(1 / fmr)} impostor pairs",
            }
        )
    return {
        "cell": name,
        "impostor_pairs": int(imp_sim.size),
        "genuine_pairs": int(gen_sim.size),
        "anchors": _anchor_rows(imp_pct, gen_pct),
        "at_fmr": thresholds,
    }


def group_report(
    mapping: CalibratedMapping,
    vectors: npt.NDArray[np.float32],
    group: list[str | None],
    i: npt.NDArray[np.intp],
    j: npt.NDArray[np.intp],
    genuine: npt.NDArray[np.bool_],
) -> dict[str, Any]:
    """Per group and pair of groups, for scored pairs (i, j) of rows of ``vectors``."""
    similarity = pair_scores(vectors, i, j)  # without gathering (pairs, D) copies
    percents = pair_percents(mapping, vectors, i, j, similarity)
    names = sorted({g for g in group if g is not None})
    code = np.array([names.index(g) if g is not None else -1 for g in group])
    gi, gj = code[i], code[j]
    labelled = (gi >= 0) & (gj >= 0)
    cells = []
    for a_idx, a in enumerate(names):
        for b_idx in range(a_idx, len(names)):
            b = names[b_idx]
            sel = labelled & (((gi == a_idx) & (gj == b_idx)) | ((gi == b_idx) & (gj == a_idx)))
            imp, gen = sel & ~genuine, sel & genuine
            if not imp.any():
                continue
            cells.append(
                _cell(
                    a if a == b else f"{a} x {b}",
                    similarity[imp],
                    percents[imp],
                    similarity[gen],
                    percents[gen],
                )
            )
    imp_all, gen_all = labelled & ~genuine, labelled & genuine
    overall = _cell(
        "all", similarity[imp_all], percents[imp_all], similarity[gen_all], percents[gen_all]
    )
    within = [c for c in cells if " x " not in c["cell"]]
    spread = []
    for k, anchor in enumerate(ANCHORS):
        rates = [
            c["anchors"][k]["measured_fmr"] for c in within if c["anchors"][k]["accepted"] >= 1
        ]
        spread.append(
            {
                "percent": anchor,
                "groups_with_accepted_pairs": len(rates),
                "max_over_min_fmr": max(rates) / min(rates) if len(rates) >= 2 else None,
            }
        )
    return {
        "calibration": mapping.id,
        "groups": names,
        "images_per_group": {n: int(np.sum(code == k)) for k, n in enumerate(names)},
        "cells": cells,
        "all": overall,
        "max_over_min_fmr_across_groups": spread,
    }


def format_table(report: dict[str, Any], anchors: tuple[float, ...] = (40.0, 60.0, 80.0)) -> str:
    """The printed per-group table: measured FMR (and /claimed) at each anchor."""
    idx = [ANCHORS.index(a) for a in anchors]
    head = f"{'group (pairs)':<44}"
    for a in anchors:
        head += f"{f'{a:.0f} % (claim {fmr_for_percent(a):.0e})':>26}"
    head += f"{'TAR@80 %':>10}"
    lines = [f"calibration {report['calibration']}", head]
    for cell in [*report["cells"], report["all"]]:
        label = f"{cell['cell']} ({cell['impostor_pairs']:,} imp, {cell['genuine_pairs']:,} gen)"
        row = f"{label:<44}"
        for k in idx:
            a = cell["anchors"][k]
            if a["measured_fmr"] is None:
                row += f"{'n/a':>26}"
                continue
            text = f"{a['measured_fmr']:.1e} ({a['ratio']:.2f}x, n={a['accepted']})"
            tail = a.get("tail")
            if tail and tail.get("ratio") is not None and a["accepted"] < TAIL_MIN_ACCEPTED:
                text = f"{a['measured_fmr']:.0e}/gpd {tail['ratio']:.1f}x n={a['accepted']}"
            row += f"{text:>26}"
        tar = cell["anchors"][ANCHORS.index(80.0)]["tar"]
        row += f"{(f'{100 * tar:.2f} %' if tar is not None else 'n/a'):>10}"
        lines.append(row)
    spread = ", ".join(
        f"{s['percent']:.0f} %: {s['max_over_min_fmr']:.1f}x"
        for s in report["max_over_min_fmr_across_groups"]
        if s["max_over_min_fmr"] is not None
    )
    lines.append(f"max/min FMR across groups: {spread or 'n/a'}")
    return "\n".join(lines)


def write_differential_plot(out: Path, report: dict[str, Any], title: str) -> Path:
    """differential.png: measured FMR against the claimed FMR, per group (Wilson 95 %)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    claims = np.array([fmr_for_percent(a) for a in ANCHORS])
    ax.fill_between(claims, claims * 0.5, claims * 2, color="0.85", label="0.5x-2x of the claim")
    ax.loglog(claims, claims, color="0.4", lw=1, ls="--", label="measured = claimed")
    for cell in [*report["cells"], report["all"]]:
        rows = cell["anchors"]
        xs, ys, lo, hi = [], [], [], []
        for c, r in zip(claims, rows, strict=True):
            if r["accepted"] >= 1:
                xs.append(c)
                ys.append(r["measured_fmr"])
                lo.append(r["measured_fmr"] - r["fmr_ci"][0])
                hi.append(r["fmr_ci"][1] - r["measured_fmr"])
        if xs:
            ax.errorbar(
                xs,
                ys,
                yerr=[lo, hi],
                marker="o",
                ms=4,
                capsize=2,
                lw=1,
                label=f"{cell['cell']} ({cell['impostor_pairs']:,})",
            )
    ax.set(
        xlabel="FMR the score claims (anchors 20..100 %)",
        ylabel="FMR measured",
        title=f"Differential: {title}",
    )
    ax.invert_xaxis()
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    path = out / "differential.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
