"""`fvs eval` and `fvs calibrate`: scores for listed and generated pairs, the JSON report and
the ROC, DET and score-histogram plots."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fvs.evaluation import metrics as m
from fvs.evaluation.calibration import anchor_grid, fit_calibration
from fvs.evaluation.dataset import Dataset, Errata, PairsFile, all_pairs, read_lfw_pairs
from fvs.evaluation.embeddings import Embedded, embed_dataset, pair_scores
from fvs.evaluation.groups import group_report, read_groups
from fvs.evaluation.regions import fit_region_model
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.quality import QualityMinimums
from fvs.pipeline.score import CalibratedMapping, Calibration

FMRS = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]


def _as_stored(embedded: Embedded, encoding: str) -> np.ndarray:
    from fvs.store import codec  # noqa: PLC0415

    vectors = embedded.vectors.copy()
    ok = embedded.ok
    if ok.any():
        rows = vectors[ok]
        payloads = [codec.encode(v, encoding) for v in rows]
        vectors[ok] = codec.decode_many(payloads, encoding, rows.shape[1])
    return vectors


@dataclass
class EvalOptions:
    dataset: Path
    pairs: Path | None = None
    errata: Path | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    impostors: str = "all"  # "all" or a number to sample
    seed: int = 0
    cache: Path | None = None
    progress: bool = True
    # Score every embedding as the registry stores templates (fvs.store.codec): f32 (as
    # computed), f16 or i8. Both sides of each pair go through it (a stricter test than
    # verification, where only the enrolled side does).
    template_encoding: str = "f32"
    groups: Path | None = None  # identity->group TSV, or a labels CSV of single photos
    group_column: str = "race"
    default_group: str = "other"
    population: bool = False  # every photo (flat folder or subfolders) a distinct identity


def _operating_points(
    genuine: np.ndarray, impostor: np.ndarray, genuine_total: int
) -> list[dict[str, Any]]:
    points = []
    for fmr in FMRS:
        op = m.tar_at_fmr(genuine, impostor, fmr)
        point = asdict(op)
        if op.threshold is not None:
            hits = int(np.count_nonzero(genuine >= op.threshold))
            point["tar_including_fta"] = hits / genuine_total if genuine_total else None
        else:
            point["note"] = f"needs at least {int(np.ceil(1 / fmr))} impostor pairs"
        points.append(point)
    return points


def _summary(genuine: np.ndarray, impostor: np.ndarray, genuine_total: int) -> dict[str, Any]:
    if genuine.size == 0 or impostor.size == 0:
        return {
            "genuine_scored": int(genuine.size),
            "impostor_scored": int(impostor.size),
            "note": "needs both genuine and impostor pairs",
        }
    rate, threshold = m.eer(genuine, impostor)
    return {
        "genuine_scored": int(genuine.size),
        "impostor_scored": int(impostor.size),
        "eer": rate,
        "eer_threshold": threshold,
        "auc": m.auc(genuine, impostor),
        "tar_at_fmr": _operating_points(genuine, impostor, genuine_total),
    }


class Evaluation:
    """Embeds a dataset once and scores its pairs."""

    def __init__(self, pipeline: FacePipeline, options: EvalOptions) -> None:
        self.pipeline = pipeline
        self.options = options
        self.labels = (
            read_groups(options.groups, options.group_column, options.default_group)
            if options.groups is not None
            else None
        )
        if self.labels is not None and self.labels.photos:
            files = sorted(self.labels.by_key)
            self.dataset = Dataset(options.dataset, files, files)
        elif options.population:
            self.dataset = Dataset.scan_population(options.dataset)
        else:
            self.dataset = Dataset.scan(options.dataset)
        self.errata = Errata.read(options.errata, options.aliases)
        self.embedded: Embedded = embed_dataset(
            pipeline, self.dataset, options.cache, options.progress
        )
        if options.template_encoding != "f32":
            self.embedded.vectors = _as_stored(self.embedded, options.template_encoding)
        self.index = self.dataset.index()

    def fta(self) -> dict[str, Any]:
        reasons = Counter(f for f in self.embedded.failure if f)
        return {
            "images": len(self.dataset.images),
            "failed": sum(reasons.values()),
            "by_reason": dict(sorted(reasons.items())),
            "failed_images": [
                img for img, f in zip(self.dataset.images, self.embedded.failure, strict=True) if f
            ],
        }

    def generated(self) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """All genuine pairs and all (or sampled) cross-identity pairs of non-excluded images."""
        keep = np.array([not self.errata.excludes(i) for i in self.dataset.images])
        i, j, genuine = all_pairs(self.dataset, keep, self.errata)
        if self.options.impostors != "all":
            rng = np.random.default_rng(self.options.seed)
            impostor_idx = np.flatnonzero(~genuine)
            n = min(int(self.options.impostors), impostor_idx.size)
            chosen = np.sort(rng.choice(impostor_idx, size=n, replace=False))
            sel = np.sort(np.concatenate([np.flatnonzero(genuine), chosen]))
            i, j, genuine = i[sel], j[sel], genuine[sel]
        ok = self.embedded.ok
        scored = ok[i] & ok[j]
        scores = pair_scores(self.embedded.vectors, i[scored], j[scored])
        g, imp = scores[genuine[scored]], scores[~genuine[scored]]
        tradeoff = self.quality_tradeoff(i, j, genuine, scored, scores)
        section = {
            "impostor_sampling": self.options.impostors,
            "seed": self.options.seed,
            "excluded_images": sorted(
                img for img, k in zip(self.dataset.images, keep, strict=True) if not k
            ),
            "aliases_never_paired": sorted(sorted(a) for a in self.errata.aliases),
            "genuine_pairs": int(genuine.sum()),
            "impostor_pairs": int((~genuine).sum()),
            "pairs_not_scored_fta": {
                "genuine": int((genuine & ~scored).sum()),
                "impostor": int((~genuine & ~scored).sum()),
            },
            **_summary(g, imp, int(genuine.sum())),
            "quality_gate_tradeoff": tradeoff,
        }
        return section, g, imp

    def component_masks(self, minimums: QualityMinimums) -> dict[str, np.ndarray]:
        """Which images reach each component of ``minimums`` (NaN quality: none)."""
        e = self.embedded
        with np.errstate(invalid="ignore"):
            return {
                "face_size": e.component("inter_eye_px") >= minimums.inter_eye_px,
                "sharpness": e.component("sharpness") >= minimums.sharpness,
                "exposure": (e.component("exposure") >= minimums.exposure_min)
                & (e.component("exposure") <= minimums.exposure_max),
                "contrast": e.component("contrast") >= minimums.contrast,
                "pose": (np.abs(e.component("yaw_deg")) <= minimums.max_yaw_deg)
                & (np.abs(e.component("pitch_deg")) <= minimums.max_pitch_deg),
                "detection_score": e.component("detection_score") >= minimums.detection_score,
            }

    def quality_tradeoff(
        self,
        i: np.ndarray,
        j: np.ndarray,
        genuine: np.ndarray,
        scored: np.ndarray,
        scores: np.ndarray,
    ) -> list[dict[str, Any]]:
        """Failures to acquire against TAR at FMR 1e-4 (counting FTA as non-matches) for the
        verify minimums as served, the enrolment minimums, and each enrolment component."""
        ok = self.embedded.ok
        enrol = self.component_masks(self.pipeline.minimums["enroll"])
        rules = {
            "verify minimums (as served)": ok,
            "enrolment minimums (all)": ok & np.logical_and.reduce(list(enrol.values())),
        }
        rules.update({f"enrolment {name} only": ok & mask for name, mask in enrol.items()})
        gen_scored = genuine[scored]
        rows = []
        for name, passes in rules.items():
            pair_ok = (passes[i] & passes[j])[scored]
            g = scores[gen_scored & pair_ok]
            imp = scores[~gen_scored & pair_ok]
            threshold = m.threshold_at_fmr(imp, 1e-4)
            hits = int(np.count_nonzero(g >= threshold)) if threshold is not None else None
            total = int(genuine.sum())
            rows.append(
                {
                    "rule": name,
                    "fta_images": int((~passes).sum()),
                    "fta_rate": float((~passes).mean()),
                    "genuine_pairs_lost": int(total - np.count_nonzero(gen_scored & pair_ok)),
                    "tar_at_fmr_1e-4_including_fta": hits / total
                    if hits is not None and total
                    else None,
                }
            )
        return rows

    def listed(self, pairs_file: PairsFile) -> dict[str, Any]:
        pairs = pairs_file.pairs
        a = np.array([self.index[p.a] for p in pairs], dtype=np.intp)
        b = np.array([self.index[p.b] for p in pairs], dtype=np.intp)
        labels = np.array([p.genuine for p in pairs], dtype=bool)
        folds = np.array([p.fold for p in pairs])
        ok = self.embedded.ok
        scored = ok[a] & ok[b]
        scores = pair_scores(self.embedded.vectors, a[scored], b[scored])
        clean = np.array(
            [not (self.errata.excludes(p.a) or self.errata.excludes(p.b)) for p in pairs]
        )[scored]
        acc = m.kfold_accuracy(scores, labels[scored], folds[scored])
        acc_clean = m.kfold_accuracy(scores[clean], labels[scored][clean], folds[scored][clean])
        return {
            "pairs": len(pairs),
            "genuine": int(labels.sum()),
            "impostor": int((~labels).sum()),
            "problems": pairs_file.problems,
            "pairs_not_scored_fta": int((~scored).sum()),
            "folds": int(np.unique(folds).size),
            "accuracy": {
                "mean": acc.mean,
                "std": acc.std,
                "folds": acc.folds,
                "thresholds": acc.thresholds,
            },
            "accuracy_without_errata": {
                "pairs": int(clean.sum()),
                "mean": acc_clean.mean,
                "std": acc_clean.std,
            },
            **_summary(scores[labels[scored]], scores[~labels[scored]], int(labels.sum())),
        }

    def report(self) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        info = self.pipeline.info
        report: dict[str, Any] = {
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "dataset": str(self.options.dataset),
            "model": info.model_id,
            "providers": info.providers,
            "detector_sha256": info.detector_sha256,
            "recognizer_sha256": info.recognizer_sha256,
            "pipeline": self.pipeline.settings.model_dump(),
            "quality_minimums": self.pipeline.minimums["verify"].__dict__,
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "unreadable_files": self.embedded.problems,
            "failure_to_acquire": self.fta(),
        }
        if self.options.pairs is not None:
            report["listed_pairs"] = self.listed(read_lfw_pairs(self.options.pairs, self.dataset))
        report["generated_pairs"], g, imp = self.generated()
        return report, g, imp

    def image_groups(self) -> list[str | None]:
        """The group of each image (None: unlabelled), from the groups file."""
        if self.labels is None:
            return ["all"] * len(self.dataset.images)
        if self.labels.photos:
            return [self.labels.group_of(img) for img in self.dataset.images]
        return [self.labels.group_of(person) for person in self.dataset.identity]

    def groups(self, mapping: CalibratedMapping) -> dict[str, Any]:
        """The per-group report (fvs.evaluation.groups) of ``mapping`` on every scored pair of
        non-excluded images."""
        keep = np.array([not self.errata.excludes(i) for i in self.dataset.images])
        i, j, genuine = all_pairs(self.dataset, keep, self.errata)
        ok = self.embedded.ok
        scored = ok[i] & ok[j]
        section = group_report(
            mapping,
            self.embedded.vectors,
            self.image_groups(),
            i[scored],
            j[scored],
            genuine[scored],
        )
        section["groups_file"] = str(self.options.groups) if self.options.groups else None
        section["pairs_not_scored_fta"] = int((~scored).sum())
        return section

    def _scored_pairs(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, j, genuine = all_pairs(self.dataset, keep, self.errata)
        ok = self.embedded.ok
        scored = ok[i] & ok[j]
        scores = pair_scores(self.embedded.vectors, i[scored], j[scored])
        return scores[genuine[scored]], scores[~genuine[scored]]

    def _fit(
        self, genuine: np.ndarray, impostor: np.ndarray, name: str, regions: Any = None
    ) -> Calibration:
        info = self.pipeline.info
        return fit_calibration(
            genuine,
            impostor,
            model_id=info.model_id,
            recognizer_sha256=info.recognizer_sha256,
            detector_sha256=info.detector_sha256,
            dataset=name,
            regions=regions,
            method="fmr-population-v1" if self.options.population else "fmr-v1",
        )

    def calibrate(self, name: str, region: str | None = None, seed: int = 0) -> Calibration:
        """The global table on every scored pair of non-excluded images; with ``region`` (a
        group of the groups file) also the region model (fvs/pipeline/regions.py)."""
        keep = np.array([not self.errata.excludes(i) for i in self.dataset.images])
        if region is None:
            return self._fit(*self._scored_pairs(keep), name)
        groups = self.image_groups()
        if region not in set(groups):
            raise ValueError(f"no image of group {region!r} in the groups file")
        i, j, genuine = all_pairs(self.dataset, keep, self.errata)
        ok = self.embedded.ok
        scored = ok[i] & ok[j]
        i, j, genuine = i[scored], j[scored], genuine[scored]
        scores = pair_scores(self.embedded.vectors, i, j)
        used = np.flatnonzero(ok & keep)
        row = np.full(len(self.dataset.images), -1)
        row[used] = np.arange(used.size)
        _, person = np.unique(np.array(self.dataset.identity)[used], return_inverse=True)
        # aliases are one person: the cohort must not hold them twice
        names = np.array(self.dataset.identity)[used]
        for pair in self.errata.aliases:
            a, b = sorted(pair)
            person[names == b] = person[names == a][0] if (names == a).any() else person[names == b]
        percents, fmrs = anchor_grid()
        model = fit_region_model(
            self.embedded.vectors[used],
            person,
            np.array([groups[k] == region for k in used]),
            row[i[~genuine]],
            row[j[~genuine]],
            scores[~genuine],
            percents,
            fmrs,
            region=region,
            source=f"{name}: {int(np.unique(person).size)} people",
            seed=seed,
        )
        return self._fit(scores[genuine], scores[~genuine], name, model)

    def holdout_check(self, name: str) -> list[dict[str, float | None]]:
        """Calibrate on half of the identities, measure FMR and FNMR on the other half."""
        if self.options.population:  # CRC parity is constant over same-length file names
            halves = np.array(
                [hashlib.sha256(p.encode()).digest()[0] % 2 for p in self.dataset.identity]
            )
        else:
            halves = np.array([zlib.crc32(p.encode()) % 2 for p in self.dataset.identity])
        keep = np.array([not self.errata.excludes(i) for i in self.dataset.images])
        calibration = self._fit(*self._scored_pairs(keep & (halves == 0)), f"{name} (half A)")
        test_g, test_i = self._scored_pairs(keep & (halves == 1))
        return [
            {
                "percent": p.percent,
                "target_fmr": p.fmr,
                "heldout_fmr": float(np.mean(test_i >= p.cosine)) if test_i.size else None,
                "heldout_fnmr": float(np.mean(test_g < p.cosine)) if test_g.size else None,
                "heldout_impostor_pairs": int(test_i.size),
            }
            for p in calibration.table
        ]


def write_plots(out: Path, genuine: np.ndarray, impostor: np.ndarray, title: str) -> list[Path]:
    """roc.png, det.png and scores.png in ``out``."""
    # matplotlib is only needed here; importing it lazily keeps the server free of it.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    _, fmr, tar = m.roc(genuine, impostor)
    floor = 0.5 / max(impostor.size, 1)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.semilogx(np.maximum(fmr, floor), tar)
    ax.set(
        xlabel="false match rate (FMR)",
        ylabel="true accept rate (TAR)",
        title=f"ROC: {title}",
        xlim=(max(floor, 1e-7), 1),
        ylim=(0.9, 1.0005),
    )
    ax.grid(True, which="both", alpha=0.3)
    paths.append(out / "roc.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    fnmr = 1 - tar
    ax.loglog(np.maximum(fmr, floor), np.maximum(fnmr, 0.5 / max(genuine.size, 1)))
    ax.set(
        xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)", title=f"DET: {title}"
    )
    ax.grid(True, which="both", alpha=0.3)
    paths.append(out / "det.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(-0.4, 1.0, 141).tolist()
    ax.hist(impostor, bins=bins, density=True, alpha=0.6, label=f"impostor ({impostor.size:,})")
    ax.hist(genuine, bins=bins, density=True, alpha=0.6, label=f"genuine ({genuine.size:,})")
    ax.set_yscale("log")
    ax.set(xlabel="cosine similarity", ylabel="density (log)", title=f"Scores: {title}")
    ax.legend()
    paths.append(out / "scores.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths


def write_report(out: Path, report: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    return path
