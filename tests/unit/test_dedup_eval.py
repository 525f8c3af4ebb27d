"""The 1:N evaluation's arithmetic (fvs/evaluation/dedup.py): FNIR over mated searches, FPIR
over non-mated ones, per-pair bars, and a whole run on a tiny synthetic registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fvs.dedup.rule import DuplicateRule
from fvs.evaluation import dedup as d
from fvs.pipeline.score import CalibratedMapping, Calibration
from fvs.store.index import TemplateIndex
from fvs.store.search import SearchParams

CALIBRATION = Path(__file__).parents[2] / "models" / "buffalo_sc.calibration.json"
NEG = -np.inf


def test_fnir_counts_missed_mates_and_fpir_any_candidate_at_its_bar() -> None:
    similarity = np.array(
        [
            [0.60, 0.20],  # mated, mate at its bar: found
            [0.70, 0.40],  # mated, only a non-mate at the bar: missed (and not a hit)
            [0.45, NEG],  # non-mated, below the bar: quiet
            [0.55, 0.30],  # non-mated, at the bar: false alarm
            [0.55, NEG],  # non-mated, same similarity but a higher bar for this pair: quiet
        ]
    )
    bars = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.6, 0.6]])
    mate = np.array([[True, False], [False, True], [False, False], [False, False], [False, False]])
    mated = np.array([True, True, False, False, False])
    missed, alarm = d.outcomes(similarity, bars, mate, mated)
    assert missed.tolist() == [False, True, False, False, False]
    assert alarm.tolist() == [False, False, False, True, False]
    rates = d.identification_rates(similarity, bars, mate, mated)
    assert rates["mated_searches"] == 2 and rates["missed"] == 1
    assert rates["fnir"] == pytest.approx(0.5)
    assert rates["non_mated_searches"] == 3 and rates["false_alarms"] == 1
    assert rates["fpir"] == pytest.approx(1 / 3)
    lo, hi = rates["fpir_ci"]
    assert lo < 1 / 3 < hi


def test_rates_without_searches_of_a_kind_are_none() -> None:
    rates = d.identification_rates(
        np.array([[0.9]]), np.array([[0.5]]), np.array([[False]]), np.array([False])
    )
    assert rates["fnir"] is None and rates["fpir"] == 1.0


def _mapping() -> CalibratedMapping:
    return CalibratedMapping(Calibration.model_validate_json(CALIBRATION.read_text("utf-8")))


def _unit(rng: np.random.Generator, n: int, dim: int = 512) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_weights_reproduce_the_rules_bars_at_every_max_fmr() -> None:
    mapping = _mapping()
    rng = np.random.default_rng(1)
    probe, cands = _unit(rng, 1)[0], _unit(rng, 7)
    weighting = DuplicateRule.from_mapping(mapping, 1e-6)
    m = d.memberships(weighting, np.concatenate([probe[None, :], cands]))
    assert m is not None
    weights = d.pair_weights(weighting, float(m[0]), m[1:])
    for fmr in (1e-4, 1e-6, 1e-9):
        rule = DuplicateRule.from_mapping(mapping, fmr)
        np.testing.assert_allclose(weights @ np.asarray(rule.thresholds), rule.bars(probe, cands))


def _photos(vectors: np.ndarray, person: list[int]) -> d.Photos:
    return d.Photos(
        vectors=vectors.astype(np.float32),
        person=np.array(person, dtype=np.int64),
        images=[f"p{p}/{k}.jpg" for k, p in enumerate(person)],
        excluded=[],
        not_acquired=[],
    )


def _noisy(rng: np.random.Generator, v: np.ndarray, scale: float) -> np.ndarray:
    w = v + scale * rng.standard_normal(v.shape).astype(np.float32)
    return w / np.linalg.norm(w)


def test_a_run_on_a_tiny_registry() -> None:
    """People 0 (two photos), 1, 2 and 3, who looks like 1: whichever of 1 and 3 is enrolled
    second raises the only false alarm; 0's second photo is the only mated search."""
    rng = np.random.default_rng(2)
    base = _unit(rng, 3)
    vectors = np.stack(
        [base[0], _noisy(rng, base[0], 0.01), base[1], base[2], _noisy(rng, base[1], 0.01)]
    )
    photos = _photos(vectors, [0, 0, 1, 2, 3])
    rule = DuplicateRule(max_fmr=1e-6, thresholds=(0.5,), mapping=None)
    templates = TemplateIndex("m@0", 512, encoding="f32")
    searches, index = d.run_searches(photos, templates, rule, SearchParams(), 3, seed=0)
    assert index.kind == "flat" and len(templates) == 5
    assert int(searches.mated.sum()) == 1
    assert searches.gallery.tolist() == [0, 1, 2, 3, 4]
    rates = d.identification_rates(
        searches.similarity, d.bars_of(searches, rule), searches.mate, searches.mated
    )
    assert rates["fnir"] == 0.0
    assert rates["false_alarms"] == 1 and rates["fpir"] == pytest.approx(1 / 4)
    # a bar above every pair: the mate is missed, nothing is raised
    high = d.identification_rates(
        searches.similarity,
        d.bars_of(searches, DuplicateRule(1e-9, (1.01,), None)),
        searches.mate,
        searches.mated,
    )
    assert high["fnir"] == 1.0 and high["fpir"] == 0.0


def test_sweep_and_distractors_with_the_shipped_calibration() -> None:
    mapping = _mapping()
    rng = np.random.default_rng(3)
    base = _unit(rng, 20)
    vectors = np.concatenate([base, np.stack([_noisy(rng, b, 0.02) for b in base[:5]])])
    photos = _photos(vectors, list(range(20)) + list(range(5)))
    weighting = DuplicateRule.from_mapping(mapping, 1e-6)
    templates = d.gallery("m@0", 512, "i8", 1000, "isotropic", 0, None)
    searches, _ = d.run_searches(photos, templates, weighting, SearchParams(), 5, seed=0)
    assert searches.gallery.min() == 1000
    points = d.sweep(searches, mapping, [1e-3, 1e-6, 1e-9])
    assert [p["mated_searches"] for p in points] == [5, 5, 5]
    fpirs = [p["fpir"] for p in points]
    assert fpirs == sorted(fpirs, reverse=True)
    assert points[1]["fnir"] == 0.0 and points[1]["fpir"] == 0.0
    predicted = points[1]["predicted_fpir_at_run_gallery"]
    assert predicted == pytest.approx(1 - (1 - 1e-6) ** 1010, rel=0.02)


def test_face_like_distractors_keep_the_moments_of_what_they_were_fitted_on() -> None:
    rng = np.random.default_rng(4)
    centre = _unit(rng, 1)[0]
    real = np.stack([_noisy(rng, centre, 0.05) for _ in range(800)])
    model = d.FaceLike.fit(real, "test")
    sample = model.sample(0, 800, seed=0)
    np.testing.assert_allclose(np.linalg.norm(sample, axis=1), 1.0, rtol=1e-5)
    assert abs(float((sample @ centre).mean()) - float((real @ centre).mean())) < 0.01
    with pytest.raises(ValueError, match="more than 512"):
        d.FaceLike.fit(real[:100], "too few")
    with pytest.raises(ValueError, match="face-like"):
        list(d.distractor_chunks(10, 512, "face-like", 0, None))
