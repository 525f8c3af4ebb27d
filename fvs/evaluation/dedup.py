"""1:N duplicate-search accuracy (issue 9) in ISO/IEC 19795-1 terms: `fvs eval-dedup`.

Every acquired photo of an identity-folder dataset is enrolled, in a seeded random order, under
its own citizen ID. Before it is enrolled it is searched against everything enrolled so far,
with the service's own :class:`~fvs.store.search.SearchIndex` over a
:class:`~fvs.store.index.TemplateIndex` in the registry's template encoding, and judged by
:class:`~fvs.dedup.rule.DuplicateRule`:

* a photo whose person is already enrolled is a **mated** search: it is missed (FNIR, false
  negative identification rate) when no photo of its person comes back at or above its bar;
* a photo of a person not enrolled yet is a **non-mated** search: it raises a false alarm
  (FPIR, false positive identification rate) when any candidate reaches its bar.

Each search runs once and keeps its candidates (similarity, same person or not, and the
region-pair weights its bar blends); every ``max_fmr`` of the sweep then only recomputes the
bars, so the whole DET curve costs one pass of searches. Distractor templates can be put in
the gallery before the run (FPIR grows with the gallery): isotropic random unit vectors (the
registry's synthetic templates, which no real face resembles) or "face-like" ones drawn from a
Gaussian fitted to embeddings of another dataset's photos.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fvs.dedup.rule import DuplicateRule, expected_fpir
from fvs.evaluation.dataset import Dataset, Errata
from fvs.evaluation.metrics import wilson
from fvs.pipeline.score import CalibratedMapping
from fvs.store.index import TemplateIndex
from fvs.store.search import SearchIndex, SearchParams
from fvs.store.synthetic import template_chunk

Vectors = npt.NDArray[np.float32]
PHOTO_BASE = 1_000_000_000_000  # citizen ID of photo k: PHOTO_BASE + k
DISTRACTOR_BASE = 9_000_000_000_000  # citizen ID of distractor k: DISTRACTOR_BASE + k
DISTRACTOR_KINDS = ("isotropic", "face-like", "real")
REPORT_FMRS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)
TARGET_FNIR = 0.08
TARGET_FPIR = 0.005
_CHUNK = 65536


def sweep_fmrs(low: float = 1e-10, high: float = 1e-2, per_decade: int = 10) -> list[float]:
    """max_fmr values for the DET curve, ``per_decade`` a decade, plus the reported ones."""
    decades = np.arange(math.log10(high), math.log10(low) - 1e-9, -1.0 / per_decade)
    grid = {float(f"{10.0**d:.6g}") for d in decades} | set(REPORT_FMRS)
    return sorted(grid, reverse=True)


# the arithmetic ---------------------------------------------------------------------------
@dataclass
class Searches:
    """One row per search, one column per candidate (best first, padded with -inf)."""

    similarity: npt.NDArray[np.float64]  # (S, K)
    mate: npt.NDArray[np.bool_]  # (S, K): the candidate is a photo of the probe's person
    weights: npt.NDArray[np.float64]  # (S, K, P): region-pair weights of each bar (P = 1 or 3)
    mated: npt.NDArray[np.bool_]  # (S,): the probe's person was enrolled before it
    gallery: npt.NDArray[np.int64]  # (S,): templates in the gallery when it was searched

    @property
    def full(self) -> npt.NDArray[np.bool_]:
        """The candidate list came back full: a longer one might hold more at the bar."""
        return np.asarray(np.isfinite(self.similarity[:, -1]), dtype=np.bool_)


def outcomes(
    similarity: npt.NDArray[np.float64],
    bars: npt.NDArray[np.float64],
    mate: npt.NDArray[np.bool_],
    mated: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(missed, alarm) per search: a mated search is missed when no mate candidate reaches
    its bar; a non-mated search raises an alarm when any candidate does."""
    hit = similarity >= bars
    missed = mated & ~np.any(hit & mate, axis=1)
    alarm = ~mated & np.any(hit, axis=1)
    return missed, alarm


def identification_rates(
    similarity: npt.NDArray[np.float64],
    bars: npt.NDArray[np.float64],
    mate: npt.NDArray[np.bool_],
    mated: npt.NDArray[np.bool_],
) -> dict[str, Any]:
    """FNIR over the mated searches and FPIR over the non-mated ones, with 95 % Wilson
    intervals (None where there is no search of that kind)."""
    missed, alarm = outcomes(similarity, bars, mate, mated)
    n_mated, n_non = int(mated.sum()), int((~mated).sum())
    n_missed, n_alarm = int(missed.sum()), int(alarm.sum())
    return {
        "mated_searches": n_mated,
        "missed": n_missed,
        "fnir": n_missed / n_mated if n_mated else None,
        "fnir_ci": list(wilson(n_missed, n_mated)) if n_mated else None,
        "non_mated_searches": n_non,
        "false_alarms": n_alarm,
        "fpir": n_alarm / n_non if n_non else None,
        "fpir_ci": list(wilson(n_alarm, n_non)) if n_non else None,
    }


def bars_of(searches: Searches, rule: DuplicateRule) -> npt.NDArray[np.float64]:
    """The bar of every (search, candidate) under ``rule``: (S, K)."""
    thresholds = np.asarray(rule.thresholds, dtype=np.float64)
    if searches.weights.shape[-1] != thresholds.size:
        raise ValueError("the searches were weighted for another calibration")
    return np.asarray(searches.weights @ thresholds, dtype=np.float64)


def memberships(rule: DuplicateRule, vectors: Vectors) -> npt.NDArray[np.float64] | None:
    """Region membership of each template (None: the calibration has no regions), in
    blocks; the same numbers ``rule.bars`` computes one search at a time."""
    if len(rule.thresholds) == 1:
        return None
    assert isinstance(rule.mapping, CalibratedMapping) and rule.mapping.regions is not None
    scorer = rule.mapping.regions
    out = np.empty(vectors.shape[0], dtype=np.float64)
    for start in range(0, vectors.shape[0], _CHUNK):
        out[start : start + _CHUNK] = scorer.membership(vectors[start : start + _CHUNK])
    return out


def pair_weights(
    rule: DuplicateRule, m_probe: float, m_candidates: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(K, 3): the weights ``rule.bars`` gives each region-pair threshold (from the
    memberships of the probe and of its K candidates), so that the bars of any ``max_fmr`` of
    the same calibration are ``weights @ thresholds``."""
    assert isinstance(rule.mapping, CalibratedMapping) and rule.mapping.regions is not None
    scorer = rule.mapping.regions
    n = m_candidates.size
    return np.asarray(scorer.pair_weights(np.full(n, m_probe), m_candidates), np.float64)


# distractors ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceLike:
    """A Gaussian fitted to real embeddings (their mean and covariance); samples are
    normalised to unit length like templates. It reproduces the first two moments of real
    faces, not their tails: an honest stand-in for impostors, not a substitute."""

    mean: npt.NDArray[np.float64]
    factor: npt.NDArray[np.float64]  # lower Cholesky factor of the covariance
    source: str
    fitted_on: int
    photos: Vectors  # the embeddings it was fitted on (the "real" distractors)

    @classmethod
    def fit(cls, vectors: Vectors, source: str) -> FaceLike:
        x = np.asarray(vectors, dtype=np.float64)
        if x.shape[0] <= x.shape[1]:
            raise ValueError(
                f"a face-like model of {x.shape[1]} dimensions needs more than {x.shape[1]} "
                f"embeddings ({x.shape[0]} given)"
            )
        cov = np.cov(x, rowvar=False)
        cov += np.eye(cov.shape[0]) * 1e-6 * np.trace(cov) / cov.shape[0]  # numerical floor
        mean = np.asarray(x.mean(axis=0), dtype=np.float64)
        factor = np.asarray(np.linalg.cholesky(cov), dtype=np.float64)
        return cls(mean, factor, source, int(x.shape[0]), np.asarray(vectors, np.float32))

    def sample(self, start: int, count: int, seed: int) -> Vectors:
        rng = np.random.default_rng([seed, 0xD15, start])
        z = rng.standard_normal((count, self.mean.size)) @ self.factor.T + self.mean
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return z.astype(np.float32)


def distractor_chunks(
    count: int, dim: int, kind: str, seed: int, face_like: FaceLike | None
) -> Iterator[tuple[int, Vectors]]:
    """(start, block) of ``count`` distractor templates, in bounded memory; ``real``: the
    photos ``face_like`` was fitted on, as they are (at most as many as there are)."""
    if kind not in DISTRACTOR_KINDS:
        raise ValueError(f"unknown distractor kind {kind!r}")
    if kind != "isotropic" and face_like is None:
        raise ValueError(f"{kind} distractors need embeddings of real photos")
    if kind == "real":
        assert face_like is not None
        yield 0, face_like.photos[:count]
        return
    for start in range(0, count, _CHUNK):
        n = min(_CHUNK, count - start)
        if kind == "isotropic":
            yield start, template_chunk(start, n, dim, seed)
        else:
            assert face_like is not None
            yield start, face_like.sample(start, n, seed)


# the run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Photos:
    """The searchable photos: acquired, not excluded by the errata, aliases merged."""

    vectors: Vectors  # (N, D)
    person: npt.NDArray[np.int64]  # (N,)
    images: list[str]
    excluded: list[str]
    not_acquired: list[str]

    @classmethod
    def of(
        cls, dataset: Dataset, vectors: Vectors, ok: npt.NDArray[np.bool_], errata: Errata
    ) -> Photos:
        names = np.array(dataset.identity)
        _, person = np.unique(names, return_inverse=True)
        for pair in errata.aliases:  # two names of one person are one person
            if len(pair) != 2:
                continue
            a, b = sorted(pair)
            if (names == a).any() and (names == b).any():
                person[names == b] = person[names == a][0]
        keep = np.array([not errata.excludes(i) for i in dataset.images], dtype=bool)
        use = keep & ok
        return cls(
            vectors=np.ascontiguousarray(vectors[use], dtype=np.float32),
            person=person[use].astype(np.int64),
            images=[img for img, u in zip(dataset.images, use, strict=True) if u],
            excluded=[img for img, k in zip(dataset.images, keep, strict=True) if not k],
            not_acquired=[
                img for img, k, a in zip(dataset.images, keep, ok, strict=True) if k and not a
            ],
        )


def gallery(
    model_id: str,
    dim: int,
    encoding: str,
    distractors: int,
    kind: str,
    seed: int,
    face_like: FaceLike | None,
) -> TemplateIndex:
    """A template index holding ``distractors`` templates (IDs from DISTRACTOR_BASE)."""
    index = TemplateIndex(model_id, dim, capacity=max(distractors, 1024), encoding=encoding)
    for start, block in distractor_chunks(distractors, dim, kind, seed, face_like):
        ids = [f"{DISTRACTOR_BASE + start + k:013d}" for k in range(block.shape[0])]
        index.put_many(ids, block, [1] * block.shape[0])
    return index


def run_searches(
    photos: Photos,
    templates: TemplateIndex,
    rule: DuplicateRule,
    params: SearchParams,
    candidates: int,
    seed: int,
    progress: Callable[[Sequence[int]], Sequence[int]] = lambda x: x,
) -> tuple[Searches, SearchIndex]:
    """Search then enrol every photo in a seeded random order (the gallery may already hold
    distractors); ``rule`` only supplies the region weights, not a threshold.

    Region memberships are computed once per template (the probe's from its embedding, an
    enrolled one's from its stored row), not once per search: the same values, in blocks.
    """
    order = np.random.default_rng(seed).permutation(len(photos.images))
    search = SearchIndex(templates, params).build()
    first = templates.rows_used  # rows before it are distractors
    stored = TemplateIndex.from_vectors(
        templates.model_id,
        [f"{PHOTO_BASE + k:013d}" for k in range(len(photos.images))],
        photos.vectors,
        encoding=templates.encoding,
    )
    m_probe = memberships(rule, photos.vectors)
    m_photo = memberships(rule, stored.vectors(0, stored.rows_used))
    m_distractor = (
        np.concatenate(
            [
                m
                for a in range(0, first, _CHUNK)
                if (m := memberships(rule, templates.vectors(a, min(a + _CHUNK, first))))
                is not None
            ]
        )
        if first and m_probe is not None
        else None
    )
    s, k = order.size, candidates
    sims = np.full((s, k), -np.inf)
    mate = np.zeros((s, k), dtype=bool)
    weights = np.zeros((s, k, len(rule.thresholds)))
    mated = np.zeros(s, dtype=bool)
    sizes = np.zeros(s, dtype=np.int64)
    enrolled: set[int] = set()
    for step in progress(range(s)):
        photo = int(order[step])
        probe = photos.vectors[photo]
        person = int(photos.person[photo])
        mated[step] = person in enrolled
        sizes[step] = len(templates)
        found = search.search(probe, k)
        if found:
            owners = np.array([int(c.citizen_id) for c in found], dtype=np.int64)
            real = owners < DISTRACTOR_BASE
            of = np.where(real, owners - PHOTO_BASE, 0)
            n = len(found)
            sims[step, :n] = [c.similarity for c in found]
            mate[step, :n] = real & (photos.person[of] == person)
            if m_probe is None or m_photo is None:  # one bar for every pair
                weights[step, :n] = 1.0
            else:
                rows = np.array([c.row for c in found], dtype=np.int64)
                m_cand = np.where(
                    real,
                    m_photo[of],
                    m_distractor[np.minimum(rows, first - 1)] if m_distractor is not None else 0,
                )
                weights[step, :n] = pair_weights(rule, float(m_probe[photo]), m_cand)
        templates.put(f"{PHOTO_BASE + photo:013d}", probe, 1)
        enrolled.add(person)
    return Searches(sims, mate, weights, mated, sizes), search


def sweep(
    searches: Searches, mapping: CalibratedMapping, fmrs: Sequence[float]
) -> list[dict[str, Any]]:
    """FNIR and FPIR at each max_fmr (bars from ``mapping``), with the rule's thresholds,
    the FPIR the rule predicts at the run's gallery sizes and whether the targets are met."""
    points = []
    mean_gallery = float(searches.gallery[~searches.mated].mean()) if (~searches.mated).any() else 0
    for fmr in fmrs:
        rule = DuplicateRule.from_mapping(mapping, fmr)
        bars = bars_of(searches, rule)
        rates = identification_rates(searches.similarity, bars, searches.mate, searches.mated)
        # searches whose list was full with its last candidate at its bar: a longer list
        # might have raised more
        last_at_bar = searches.similarity[:, -1] >= bars[:, -1]
        truncated = int(np.count_nonzero(searches.full & last_at_bar))
        predicted = (
            float(np.mean([expected_fpir(fmr, int(n)) for n in searches.gallery[~searches.mated]]))
            if (~searches.mated).any()
            else None
        )
        fnir, fpir = rates["fnir"], rates["fpir"]
        points.append(
            {
                "max_fmr": fmr,
                "thresholds": dict(zip(_pair_names(rule), rule.thresholds, strict=True)),
                **rates,
                "predicted_fpir_at_run_gallery": predicted,
                "mean_gallery_non_mated": mean_gallery,
                "truncated_searches": truncated,
                "meets_targets": fnir is not None
                and fpir is not None
                and fnir <= TARGET_FNIR
                and fpir <= TARGET_FPIR,
            }
        )
    return points


def _pair_names(rule: DuplicateRule) -> tuple[str, ...]:
    return ("in-in", "in-out", "out-out") if len(rule.thresholds) == 3 else ("all",)


def impostor_check(
    probes: Vectors,
    others: dict[str, Vectors],
    mapping: CalibratedMapping,
    fmrs: Sequence[float] = (1e-3, 1e-4, 1e-5, 1e-6),
) -> dict[str, Any]:
    """How impostor-like each distractor kind is: the similarity of every (probe, other)
    pair (all impostors: different datasets), and the fraction at or above the bar of each
    ``max_fmr`` (the per-comparison FMR the rule promises)."""
    rules = [DuplicateRule.from_mapping(mapping, f) for f in fmrs]
    out: dict[str, Any] = {}
    for name, vectors in others.items():
        sims_all = []
        above = np.zeros(len(fmrs), dtype=np.int64)
        scorer = mapping.regions
        m_other = scorer.membership(vectors) if scorer is not None else None
        m_probe = scorer.membership(probes) if scorer is not None else None
        for start in range(0, probes.shape[0], 256):
            sims = probes[start : start + 256] @ vectors.T  # (p, M)
            sims_all.append(sims.ravel())
            if scorer is not None:
                assert m_other is not None and m_probe is not None
                mp = m_probe[start : start + 256]
                w = scorer.pair_weights(
                    np.repeat(mp, vectors.shape[0]), np.tile(m_other, mp.size)
                ).reshape(mp.size, vectors.shape[0], 3)
            for r, rule in enumerate(rules):
                bars = (
                    w @ np.asarray(rule.thresholds)
                    if scorer is not None
                    else np.full(sims.shape, rule.thresholds[0])
                )
                above[r] += int(np.count_nonzero(sims >= bars))
        flat = np.concatenate(sims_all)
        out[name] = {
            "templates": int(vectors.shape[0]),
            "pairs": int(flat.size),
            "similarity_mean": float(flat.mean()),
            "similarity_std": float(flat.std()),
            "similarity_max": float(flat.max()),
            "similarity_p99_99": float(np.quantile(flat, 0.9999)),
            "fmr_at_bar": {
                f"{f:.0e}": int(a) / flat.size for f, a in zip(fmrs, above, strict=True)
            },
        }
    return out


def write_det(
    out: Path, curves: dict[str, list[dict[str, Any]]], title: str, marked: Sequence[float]
) -> Path:
    """dedup_det.png: FNIR against FPIR as max_fmr sweeps, one curve per run, the reported
    max_fmr values marked and the targets drawn."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for number, (label, points) in enumerate(curves.items()):
        pts = [p for p in points if p["fnir"] is not None and p["fpir"] is not None]
        if not pts:
            continue
        n_non = max(pts[0]["non_mated_searches"], 1)
        n_mated = max(pts[0]["mated_searches"], 1)
        x = [max(p["fpir"], 0.5 / n_non) for p in pts]
        y = [max(p["fnir"], 0.5 / n_mated) for p in pts]
        (line,) = ax.loglog(x, y, label=label)
        for p, xi, yi in zip(pts, x, y, strict=True):
            if any(math.isclose(p["max_fmr"], f) for f in marked):
                ax.plot(xi, yi, "o", color=line.get_color(), ms=4)
                if number:  # the first curve's labels are enough
                    continue
                ax.annotate(
                    f"{p['max_fmr']:.0e}",
                    (xi, yi),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(4, 3),
                    color=line.get_color(),
                )
    ax.axhline(TARGET_FNIR, color="grey", ls="--", lw=0.8)
    ax.axvline(TARGET_FPIR, color="grey", ls="--", lw=0.8)
    ax.set(
        xlabel="false positive identification rate (FPIR, non-mated searches)",
        ylabel="false negative identification rate (FNIR, mated searches)",
        title=f"1:N DET: {title}",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    path = out / "dedup_det.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
