"""The region-keyed calibration on synthetic embeddings where one group's impostors score
higher, as East/Southeast Asian faces do with buffalo_sc: the global table breaks its promise
for that group, the region-keyed one keeps it for both, with no label at serve time."""

import json
from pathlib import Path

import numpy as np
import pytest

from fvs.errors import ConfigError
from fvs.evaluation.calibration import anchor_grid, fit_calibration
from fvs.evaluation.regions import fit_region_model, weighted_threshold
from fvs.pipeline.regions import RegionScorer, decode_vectors, encode_vectors
from fvs.pipeline.score import CalibratedMapping, fmr_for_percent, load_calibration

DIM = 48
SHA = "a" * 64


def population(seed: int, n_in: int = 100, n_out: int = 400, shift: float = 0.9):
    """Two photos per person; 'in' people share a direction u, so their impostor cosines are
    higher. Returns (vectors, person, in_region)."""
    rng = np.random.default_rng(seed)
    u = np.zeros(DIM, dtype=np.float32)
    u[0] = 1.0
    identity = rng.standard_normal((n_in + n_out, DIM)).astype(np.float32) / np.sqrt(DIM)
    identity[:n_in] += shift * u / np.sqrt(2)
    person = np.repeat(np.arange(n_in + n_out), 2)
    noise = rng.standard_normal((person.size, DIM)).astype(np.float32) * 0.07
    vectors = identity[person] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, person, person < n_in


def impostor_pairs(person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(person.size, k=1)
    keep = person[i] != person[j]
    return i[keep], j[keep]


def calibrations():
    vectors, person, in_region = population(seed=1)
    i, j = impostor_pairs(person)
    scores = np.einsum("ij,ij->i", vectors[i], vectors[j]).astype(np.float64)
    genuine = np.einsum("ij,ij->i", vectors[0::2], vectors[1::2]).astype(np.float64)
    percents, fmrs = anchor_grid()
    model = fit_region_model(
        vectors, person, in_region, i, j, scores, percents, fmrs, region="g", source="synthetic"
    )
    common = dict(
        model_id="p@aaaaaaaaaaaa", recognizer_sha256=SHA, detector_sha256=SHA, dataset="synthetic"
    )
    plain = fit_calibration(genuine, scores, **common)  # type: ignore[arg-type]
    keyed = fit_calibration(genuine, scores, regions=model, **common)  # type: ignore[arg-type]
    return plain, keyed


@pytest.fixture(scope="module")
def fitted():
    return calibrations()


def measured_ratio(mapping: CalibratedMapping, anchor: float) -> dict[str, float]:
    """measured / claimed FMR at ``anchor`` on a fresh population (other people)."""
    vectors, person, in_region = population(seed=7)
    i, j = impostor_pairs(person)
    s = np.einsum("ij,ij->i", vectors[i], vectors[j]).astype(np.float64)
    if mapping.regions is None:
        pct = mapping.percents(s)
    else:
        m = mapping.regions.membership(vectors)
        pct = mapping.regions.percents_of_pairs(s, m[i], m[j])
    claim = fmr_for_percent(anchor)
    out = {}
    for name, sel in (
        ("in", in_region[i] & in_region[j]),
        ("out", ~in_region[i] & ~in_region[j]),
    ):
        out[name] = float(np.mean(pct[sel] >= anchor)) / claim
    return out


def test_the_global_table_breaks_the_promise_for_the_shifted_group(fitted) -> None:
    plain, _ = fitted
    ratio = measured_ratio(CalibratedMapping(plain), 40.0)
    assert ratio["in"] > 4  # the differential this method exists for
    assert ratio["out"] < 1  # and a mixture's table is too strict for the rest


def test_region_keyed_tables_keep_it_for_both_groups(fitted) -> None:
    _, keyed = fitted
    mapping = CalibratedMapping(keyed)
    for anchor in (20.0, 40.0):
        ratio = measured_ratio(mapping, anchor)
        assert 0.5 <= ratio["in"] <= 2, (anchor, ratio)
        assert 0.5 <= ratio["out"] <= 2, (anchor, ratio)
    assert keyed.id.startswith("fmr-region-knn-v1/p@aaaaaaaaaaaa/")
    assert keyed.format == 2


def test_membership_separates_the_groups_on_unseen_faces(fitted) -> None:
    _, keyed = fitted
    scorer = CalibratedMapping(keyed).regions
    assert scorer is not None
    vectors, _, in_region = population(seed=11)
    m = scorer.membership(vectors)
    assert np.all((m >= 0) & (m <= 1))
    assert m[in_region].mean() > 0.8 and m[~in_region].mean() < 0.2


def test_tables_order_and_single_call_agrees_with_the_vectorised_path(fitted) -> None:
    _, keyed = fitted
    regions = keyed.regions
    assert regions is not None
    tables = regions.tables
    # in-in impostors score higher: its thresholds sit above out-out's from FMR 1e-1 on
    assert all(a > b for a, b in zip(tables["in-in"][4:], tables["out-out"][4:], strict=True))
    mapping = CalibratedMapping(keyed)
    scorer = mapping.regions
    assert scorer is not None
    vectors, _, _ = population(seed=3, n_in=5, n_out=5)
    a, b = vectors[0], vectors[12]
    sims = np.linspace(-1.0, 1.0, 401)
    single = np.array([mapping.score(float(s), a, b)[0] for s in sims])
    assert np.all(np.diff(single) >= 0) and single[0] == 0 and single[-1] == 100
    m = scorer.membership(np.stack([a, b]))
    many = scorer.percents_of_pairs(sims, np.full(sims.size, m[0]), np.full(sims.size, m[1]))
    np.testing.assert_allclose(single, many, atol=1e-9)
    # the FMR the response carries is the one of the returned score
    percent, fmr = mapping.score(0.3, a, b)
    assert fmr == pytest.approx(fmr_for_percent(percent))
    # symmetric in the two faces
    assert mapping.score(0.3, b, a)[0] == pytest.approx(percent)


def test_file_round_trip_and_a_damaged_cohort_is_refused(fitted, tmp_path: Path) -> None:
    _, keyed = fitted
    path = tmp_path / "c.json"
    path.write_text(json.dumps(keyed.model_dump()))
    loaded = load_calibration(path, SHA)
    assert loaded.regions is not None and loaded.id == keyed.id
    data = keyed.model_dump()
    data["regions"]["region_cohort"] = data["regions"]["region_cohort"][:-8]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError):
        load_calibration(path, SHA)
    data = keyed.model_dump()
    data["regions"]["tables"]["in-in"][5] = data["regions"]["tables"]["in-in"][4]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="strictly increasing"):
        load_calibration(path, SHA)


def test_vectors_survive_float16_encoding() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((7, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    back = decode_vectors(encode_vectors(v), DIM)
    assert back.shape == (7, DIM)
    np.testing.assert_allclose(back @ back.T, v @ v.T, atol=2e-3)
    with pytest.raises(ValueError, match="whole number"):
        decode_vectors(encode_vectors(v)[:-4], DIM)


def test_weighted_threshold_is_the_plain_one_with_unit_weights() -> None:
    scores = np.linspace(0, 1, 10_001)
    for fmr in (0.5, 0.1, 1e-2, 1e-3):
        t = weighted_threshold(scores, np.ones_like(scores), fmr)
        assert np.mean(scores >= t) <= fmr
        assert np.mean(scores >= np.nextafter(t, -np.inf) - 1e-4) > fmr
    # weights move the threshold towards the heavy scores
    w = np.where(scores > 0.5, 10.0, 1.0)
    assert weighted_threshold(scores, w, 0.5) > weighted_threshold(scores, np.ones_like(w), 0.5)


def test_too_few_region_people_is_a_clear_error() -> None:
    vectors, person, in_region = population(seed=2, n_in=6, n_out=50)
    i, j = impostor_pairs(person)
    s = np.einsum("ij,ij->i", vectors[i], vectors[j]).astype(np.float64)
    percents, fmrs = anchor_grid()
    with pytest.raises(ValueError, match="at least 20 people"):
        fit_region_model(
            vectors, person, in_region, i, j, s, percents, fmrs, region="g", source="x"
        )


def test_scorer_refuses_cohorts_smaller_than_k(fitted) -> None:
    _, keyed = fitted
    regions = keyed.regions
    assert regions is not None
    small = regions.model_copy(update={"k": 10_000})
    with pytest.raises(ValueError, match="at least k"):
        RegionScorer(small, anchor_grid()[0])
