"""The duplicate rule and the 1:N search index (issue 9), on synthetic vectors."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fvs.config import DedupSettings
from fvs.dedup.rule import DuplicateRule, expected_fpir
from fvs.dedup.search import DuplicateSearch
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.score import LogisticMapping, load_calibration
from fvs.store.index import TemplateIndex
from fvs.store.search import SearchIndex, SearchParams
from fvs.store.synthetic import random_templates

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def mapping():  # type: ignore[no-untyped-def]
    path = MODELS / "buffalo_sc.calibration.json"
    return load_calibration(path, json.loads(path.read_text())["recognizer_sha256"])


def _ids(n: int, base: int = 1_100_000_000_000) -> list[str]:
    return [f"{base + i:013d}" for i in range(n)]


def _near(v: np.ndarray, noise: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = v + noise * rng.standard_normal(v.shape).astype(np.float32)
    return (out / np.linalg.norm(out, axis=-1, keepdims=True)).astype(np.float32)


def test_expected_fpir() -> None:
    assert expected_fpir(1e-6, 1) == pytest.approx(1e-6)
    assert expected_fpir(1e-6, 10**5) == pytest.approx(1 - math.exp(-0.1), rel=1e-4)
    assert expected_fpir(1e-8, 10**7) == pytest.approx(1 - math.exp(-0.1), rel=1e-4)


def test_rule_bars_rise_as_the_fmr_falls(mapping) -> None:  # type: ignore[no-untyped-def]
    rules = [DuplicateRule.from_mapping(mapping, f) for f in (1e-4, 1e-5, 1e-6, 1e-8)]
    for looser, stricter in itertools.pairwise(rules):
        assert all(s > t for s, t in zip(stricter.thresholds, looser.thresholds, strict=True))
    # East/SE-Asian pairs (in-in) have the highest bar: their impostors score higher
    in_in, in_out, out_out = rules[2].thresholds
    assert in_in > max(in_out, out_out)
    # at 1e-5 the bars are the calibration table's own top points
    top = {k: v[-1] for k, v in mapping.calibration.regions.tables.items()}
    assert rules[1].thresholds == pytest.approx((top["in-in"], top["in-out"], top["out-out"]))


def test_rule_blends_bars_per_pair(mapping) -> None:  # type: ignore[no-untyped-def]
    rule = DuplicateRule.from_mapping(mapping, 1e-6)
    vectors = random_templates(4, 512, 3)
    bars = rule.bars(vectors[0], vectors[1:])
    assert bars.shape == (3,)
    assert np.all(bars >= min(rule.thresholds) - 1e-9)
    assert np.all(bars <= max(rule.thresholds) + 1e-9)
    flags = rule.is_duplicate(vectors[0], vectors[1:], bars + 1e-6)
    assert flags.all()
    assert not rule.is_duplicate(vectors[0], vectors[1:], bars - 1e-3).any()


def test_rule_needs_a_calibrated_pack() -> None:
    with pytest.raises(ValueError, match="calibrated"):
        DuplicateRule.from_mapping(LogisticMapping(0.3, 20.0), 1e-6)
    with pytest.raises(ValueError):
        DuplicateRule.from_mapping(LogisticMapping(0.3, 20.0), 0.0)


@pytest.mark.parametrize("kind", ["flat", "pq", "ivf"])
def test_search_finds_live_templates_only(kind: str) -> None:
    n = 3000
    ids = _ids(n)
    vectors = random_templates(n, 64, 7)
    templates = TemplateIndex.from_vectors("m@1", ids, vectors, encoding="i8")
    index = SearchIndex(templates, SearchParams(kind=kind, nlist=16, nprobe=16)).build()
    assert index.kind == kind and index.covered == n
    probe = _near(vectors[10], 0.05)
    best = index.search(probe, 3)
    assert best[0].citizen_id == ids[10] and best[0].version == 1
    assert best[0].similarity == pytest.approx(float(templates.gather(np.array([10]))[0] @ probe))
    assert [c.similarity for c in best] == sorted((c.similarity for c in best), reverse=True)
    # excluded citizen
    assert ids[10] not in [c.citizen_id for c in index.search(probe, 3, exclude=ids[10])]
    # erased: never a candidate, without touching faiss
    templates.remove(ids[10])
    assert ids[10] not in [c.citizen_id for c in index.search(probe, 3)]
    # re-enrolled with another face: the old row is dead, the new one is found
    templates.put(ids[10], vectors[20], 2)
    found = index.search(_near(vectors[20], 0.05, seed=2), 2)
    assert {c.citizen_id for c in found} == {ids[10], ids[20]}
    assert next(c for c in found if c.citizen_id == ids[10]).version == 2
    assert index.covered == n + 1  # caught up with the new row
    assert index.search(probe, 0) == []


def test_search_index_round_trip_and_refusals() -> None:
    ids = _ids(500)
    vectors = random_templates(500, 32, 9)
    templates = TemplateIndex.from_vectors("m@1", ids, vectors)
    index = SearchIndex(templates, SearchParams(kind="flat")).build()
    data, covered = index.to_bytes(), index.covered
    templates.put(ids[0], vectors[1], 2)  # written after the index was persisted
    restored = SearchIndex.from_bytes(templates, data, covered)
    assert restored.covered == 501
    assert restored.search(vectors[1], 2)[0].citizen_id in {ids[0], ids[1]}
    other = TemplateIndex.from_vectors("m@1", ids[:10], vectors[:10])
    with pytest.raises(ValueError, match="lacks"):
        SearchIndex.from_bytes(other, data, covered)  # covers rows this index lacks
    with pytest.raises(ValueError, match="does not fit"):
        SearchIndex.from_bytes(templates, data, covered - 1)


def test_ivf_needs_enough_templates() -> None:
    templates = TemplateIndex.from_vectors("m@1", _ids(10), random_templates(10, 32, 1))
    with pytest.raises(ValueError, match="flat kind"):
        SearchIndex(templates, SearchParams(kind="ivf", nlist=64)).build()


def test_auto_kind_by_size() -> None:
    params = SearchParams(kind="auto", flat_max=1000)
    assert params.resolve(1000) == "flat" and params.resolve(1001) == "pq"
    assert params.cells(10**6) == 2048 and params.probes(2048) == 128
    with pytest.raises(ValueError):
        SearchParams(kind="hnsw").resolve(1)


def test_search_is_refused_until_the_index_is_built(mapping) -> None:  # type: ignore[no-untyped-def]
    search = DuplicateSearch(DedupSettings(mode="refuse"), cases=None)
    with pytest.raises(FvsError) as info:
        search.search(np.ones(512, np.float32) / math.sqrt(512), 3)
    assert info.value.code is ErrorCode.DUPLICATE_SEARCH_UNAVAILABLE
    assert info.value.retry_after_s is not None
    n = 2000
    templates = TemplateIndex.from_vectors("m@1", _ids(n), random_templates(n, 512, 5))
    search = DuplicateSearch(DedupSettings(mode="refuse", index_kind="ivf", flat_max=0), cases=None)
    search.attach(templates, mapping)  # builds in the background
    assert search.wait_ready(60)
    assert search.index is not None and search.index.kind == "ivf"
    assert len(search.search(templates.vectors(0, 1)[0], 3)) == 3


def test_rebuild_in_the_background_when_due(mapping) -> None:  # type: ignore[no-untyped-def]
    n = 2000
    ids = _ids(n)
    vectors = random_templates(n, 512, 11)
    templates = TemplateIndex.from_vectors("m@1", ids, vectors)
    search = DuplicateSearch(DedupSettings(mode="flag", flat_max=3000), cases=None)
    search.attach(templates, mapping)
    first = search.index
    assert first is not None and not search.needs_rebuild() and not search.maybe_rebuild()
    built: list[bool] = []
    search.on_built = lambda: built.append(True)  # the server saves a snapshot then
    for cid in ids[:600]:  # erased: 30 % of the rows dead
        templates.remove(cid)
    assert search.needs_rebuild() and search.maybe_rebuild()
    assert search.wait_ready(60)
    assert built == [True]
    assert search.index is not first and search.index is not None
    assert search.index.covered == templates.rows_used and search.index.dead == 0
    assert not search.needs_rebuild()
    assert search.search(vectors[700], 1)[0].citizen_id == ids[700]
    # grown past what the flat kind is for: the rebuild is a PQ index
    more = random_templates(1500, 512, 12)
    templates.put_many(_ids(1500, base=1_200_000_000_000), more, [1] * 1500)
    assert search.needs_rebuild() and search.maybe_rebuild() and search.wait_ready(120)
    assert search.index is not None and search.index.kind == "pq"
    assert search.search(more[3], 1)[0].citizen_id == _ids(1500, base=1_200_000_000_000)[3]
