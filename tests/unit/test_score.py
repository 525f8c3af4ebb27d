import itertools

import numpy as np
import pytest

from fvs.pipeline.score import LogisticMapping, cosine


def test_mapping_is_strictly_increasing_and_bounded() -> None:
    mapping = LogisticMapping()
    values = [mapping.percent(c) for c in np.linspace(-1.0, 1.0, 2001)]
    assert all(0.0 <= v <= 100.0 for v in values)
    # strictly increasing wherever double precision can tell the values apart
    inner = [mapping.percent(c) for c in np.linspace(-0.3, 0.9, 1201)]
    assert all(b > a for a, b in itertools.pairwise(inner))


def test_midpoint_is_fifty_percent() -> None:
    assert LogisticMapping(midpoint=0.3, slope=20).percent(0.3) == pytest.approx(50.0)
    assert LogisticMapping(midpoint=0.4, slope=10).percent(0.4) == pytest.approx(50.0)


def test_documented_points() -> None:
    mapping = LogisticMapping()
    assert mapping.percent(0.5) == pytest.approx(98.201, abs=1e-3)
    assert mapping.percent(0.1) == pytest.approx(1.799, abs=1e-3)


def test_extreme_slope_does_not_overflow() -> None:
    assert LogisticMapping(midpoint=0.9, slope=1e6).percent(-1.0) == 0.0
    assert LogisticMapping(midpoint=-0.9, slope=1e6).percent(1.0) == 100.0


def test_mapping_id_names_its_parameters() -> None:
    assert LogisticMapping(0.25, 12).id == "logistic-v1(mid=0.25,slope=12)"


def test_cosine_of_unit_vectors() -> None:
    a = np.array([1.0, 0.0], dtype=np.float32)
    b = np.array([np.sqrt(0.5), np.sqrt(0.5)], dtype=np.float32)
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, b) == pytest.approx(np.sqrt(0.5))
    assert cosine(a, -a) == pytest.approx(-1.0)
