"""Verification metrics on genuine and impostor similarity scores (higher = more alike).

A pair is accepted when its score is >= the threshold. FMR (= FAR) is the fraction of
impostor pairs accepted, FNMR the fraction of genuine pairs rejected, TAR = 1 - FNMR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def threshold_at_fmr(impostor: Scores, fmr: float) -> float | None:
    """The lowest threshold whose FMR is <= ``fmr``; None when too few impostors to tell
    (fewer than 1 / fmr)."""
    n = impostor.size
    if n == 0 or fmr * n < 1:
        return None
    ordered = np.sort(impostor)[::-1]
    allowed = math.floor(fmr * n + 1e-9)  # impostors that may be accepted
    if allowed >= n:
        return float(ordered[-1])
    # accept strictly above the (allowed+1)-th highest impostor score
    return float(np.nextafter(ordered[allowed], np.inf))


@dataclass(frozen=True)
class OperatingPoint:
    target_fmr: float
    threshold: float | None
    fmr: float | None
    tar: float | None
    tar_ci: tuple[float, float] | None
    impostors_accepted: int | None


def tar_at_fmr(genuine: Scores, impostor: Scores, fmr: float) -> OperatingPoint:
    threshold = threshold_at_fmr(impostor, fmr)
    if threshold is None:
        return OperatingPoint(fmr, None, None, None, None, None)
    accepted = int(np.count_nonzero(impostor >= threshold))
    hits = int(np.count_nonzero(genuine >= threshold))
    return OperatingPoint(
        target_fmr=fmr,
        threshold=threshold,
        fmr=accepted / impostor.size,
        tar=hits / genuine.size if genuine.size else math.nan,
        tar_ci=wilson(hits, genuine.size),
        impostors_accepted=accepted,
    )


def roc(genuine: Scores, impostor: Scores) -> tuple[Scores, Scores, Scores]:
    """(thresholds descending, FMR, TAR) at every distinct score."""
    scores = np.concatenate([genuine, impostor])
    labels = np.concatenate([np.ones(genuine.size), np.zeros(impostor.size)])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_run = np.r_[np.diff(scores) != 0, True]
    tp = np.cumsum(labels)[last_of_run]
    fp = np.cumsum(1 - labels)[last_of_run]
    return scores[last_of_run], fp / max(impostor.size, 1), tp / max(genuine.size, 1)


def auc(genuine: Scores, impostor: Scores) -> float:
    """Area under the ROC: P(genuine score > impostor score), ties counting half."""
    ordered = np.sort(impostor)
    below = np.searchsorted(ordered, genuine, side="left")
    not_above = np.searchsorted(ordered, genuine, side="right")
    return float(np.mean((below + not_above) / 2.0) / ordered.size)


def eer(genuine: Scores, impostor: Scores) -> tuple[float, float]:
    """(equal error rate, threshold) where FMR and FNMR cross."""
    thresholds, fmr, tar = roc(genuine, impostor)
    fnmr = 1.0 - tar
    i = int(np.argmin(np.abs(fmr - fnmr)))
    return float((fmr[i] + fnmr[i]) / 2.0), float(thresholds[i])


def best_threshold(scores: Scores, labels: npt.NDArray[np.bool_]) -> float:
    """The threshold with the highest accuracy on (scores, labels): midpoints between
    consecutive distinct scores, the middle one of the best when several tie."""
    distinct = np.unique(scores)
    candidates = np.concatenate(
        [[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2.0, [distinct[-1] + 1e-6]]
    )
    order = np.argsort(scores)
    sorted_scores, sorted_labels = scores[order], labels[order]
    # accuracy at threshold t: genuine >= t plus impostor < t
    idx = np.searchsorted(sorted_scores, candidates, side="left")
    impostor_below = np.concatenate([[0], np.cumsum(~sorted_labels)])[idx]
    genuine_at_or_above = labels.sum() - np.concatenate([[0], np.cumsum(sorted_labels)])[idx]
    correct = impostor_below + genuine_at_or_above
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[len(best) // 2]])


@dataclass(frozen=True)
class FoldAccuracy:
    mean: float
    std: float
    folds: list[float]
    thresholds: list[float]


def kfold_accuracy(
    scores: Scores, labels: npt.NDArray[np.bool_], fold_of: npt.NDArray[np.int_]
) -> FoldAccuracy:
    """LFW protocol: for each fold, the threshold is chosen on the other folds."""
    accuracies, thresholds = [], []
    for fold in np.unique(fold_of):
        train, test = fold_of != fold, fold_of == fold
        t = best_threshold(scores[train], labels[train])
        accuracies.append(float(np.mean((scores[test] >= t) == labels[test])))
        thresholds.append(t)
    return FoldAccuracy(
        float(np.mean(accuracies)), float(np.std(accuracies)), accuracies, thresholds
    )
