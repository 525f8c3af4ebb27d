"""Metrics on small synthetic score sets whose answers are known by hand."""

import math

import numpy as np
import pytest

from fvs.evaluation import metrics as m

GEN = np.array([0.9, 0.8, 0.7, 0.6, 0.35])
IMP = np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3, -0.4])


def test_threshold_at_fmr() -> None:
    # 10 impostors: FMR 0.1 lets one in (0.5), so accept strictly above the second (0.4)
    assert m.threshold_at_fmr(IMP, 0.1) == pytest.approx(np.nextafter(0.4, 1))
    assert m.threshold_at_fmr(IMP, 0.2) == pytest.approx(np.nextafter(0.3, 1))
    assert m.threshold_at_fmr(IMP, 0.05) is None  # needs 20 impostors to tell


def test_tar_at_fmr_counts_and_interval() -> None:
    point = m.tar_at_fmr(GEN, IMP, 0.1)
    assert point.tar == pytest.approx(0.8)  # 0.35 falls below 0.4
    assert point.fmr == pytest.approx(0.1)
    assert point.impostors_accepted == 1
    low, high = point.tar_ci
    assert low < 0.8 < high
    assert m.tar_at_fmr(GEN, IMP, 0.001).tar is None


def test_wilson_known_values() -> None:
    low, high = m.wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3)
    assert high == pytest.approx(0.5962, abs=1e-3)
    assert m.wilson(0, 10)[0] == 0.0
    assert math.isnan(m.wilson(0, 0)[0])


def test_auc_perfect_random_and_ties() -> None:
    assert m.auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert m.auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert m.auc(np.array([1.0]), np.array([1.0])) == 0.5
    assert m.auc(GEN, IMP) == pytest.approx((4 * 10 + 8) / 50)  # 0.35 beats 8 of 10


def test_eer_on_overlapping_sets() -> None:
    rate, threshold = m.eer(np.array([0.6, 0.7, 0.8, 0.3]), np.array([0.1, 0.2, 0.65, 0.0]))
    assert rate == pytest.approx(0.25)
    assert 0.3 < threshold <= 0.7


def test_roc_ends() -> None:
    thresholds, fmr, tar = m.roc(GEN, IMP)
    assert thresholds[0] == 0.9 and tar[0] == pytest.approx(0.2) and fmr[0] == 0
    assert fmr[-1] == 1.0 and tar[-1] == 1.0
    assert np.all(np.diff(fmr) >= 0) and np.all(np.diff(tar) >= 0)


def test_kfold_accuracy_separable_and_not() -> None:
    scores = np.concatenate([GEN[:4], IMP[2:6]])  # genuine >= 0.6 > 0.3 >= impostor
    labels = np.array([True] * 4 + [False] * 4)
    folds = np.arange(8) % 4
    separable = m.kfold_accuracy(scores, labels, folds)
    assert separable.mean == 1.0
    assert all(0.3 < t < 0.6 for t in separable.thresholds)
    flipped = m.kfold_accuracy(scores, ~labels, folds)
    assert flipped.mean < 0.5
    assert len(flipped.folds) == 4


def test_best_threshold_maximises_accuracy() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    labels = np.array([False, False, True, True])
    assert m.best_threshold(scores, labels) == pytest.approx(0.25)  # the middle of the gap
