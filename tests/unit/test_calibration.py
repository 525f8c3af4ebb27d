import json
from pathlib import Path

import numpy as np
import pytest

from fvs.errors import ConfigError
from fvs.evaluation.calibration import fit_calibration
from fvs.pipeline.score import (
    CalibratedMapping,
    fmr_for_percent,
    load_calibration,
    percent_for_fmr,
)

IMPOSTOR = np.linspace(-0.5, 0.5, 200_001)  # FMR(t) = (0.5 - t) / 1 for t in the range
GENUINE = np.linspace(0.2, 0.9, 1001)
SHA = "a" * 64


def fit() -> CalibratedMapping:
    calibration = fit_calibration(
        GENUINE,
        IMPOSTOR,
        model_id="p@aaaaaaaaaaaa",
        recognizer_sha256=SHA,
        detector_sha256="b" * 64,
        dataset="synthetic",
    )
    return CalibratedMapping(calibration)


def test_table_points_sit_at_the_impostor_quantiles() -> None:
    mapping = fit()
    table = mapping.calibration.table
    assert [p.percent for p in table] == [5.0 * k for k in range(21)]
    for point in table[1:]:
        # uniform impostors: the threshold at FMR f is 0.5 - f (one grid step of slack)
        assert point.cosine == pytest.approx(0.5 - point.fmr, abs=1e-5)
        assert point.impostors_accepted <= point.fmr * IMPOSTOR.size
    assert table[-1].fmr == pytest.approx(1e-5)


def test_fnmr_is_recorded() -> None:
    p80 = fit().calibration.table[16]  # 80 % = FMR 1e-4, cosine ~0.4999
    assert p80.percent == 80
    assert p80.fnmr == pytest.approx(np.mean(p80.cosine > GENUINE), abs=1e-9)


def test_mapping_is_monotonic_and_anchored() -> None:
    mapping = fit()
    xs = np.linspace(-1, 1, 4001)
    values = np.array([mapping.percent(x) for x in xs])
    assert np.all(np.diff(values) >= 0)
    assert values[0] == 0 and values[-1] == 100
    inside = (xs > mapping.calibration.table[0].cosine) & (
        xs < mapping.calibration.table[-1].cosine
    )
    assert np.all(np.diff(values[inside]) > 0)  # strictly increasing between the anchors
    for point in mapping.calibration.table:
        assert mapping.percent(point.cosine) == pytest.approx(point.percent)
        assert mapping.fmr(point.cosine) == pytest.approx(point.fmr, rel=1e-6)


def test_percent_fmr_round_trip() -> None:
    for fmr in (1.0, 0.1, 1e-3, 1e-4, 1e-5):
        assert fmr_for_percent(percent_for_fmr(fmr)) == pytest.approx(fmr)
    assert percent_for_fmr(1e-3) == pytest.approx(60)
    assert percent_for_fmr(1e-9) == 100
    assert percent_for_fmr(0) == 100


def test_too_few_impostors_cannot_anchor_100_percent() -> None:
    with pytest.raises(ValueError, match="at least 100000"):
        fit_calibration(
            GENUINE,
            IMPOSTOR[:5000],
            model_id="m",
            recognizer_sha256=SHA,
            detector_sha256=SHA,
            dataset="tiny",
        )


def test_calibration_for_other_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(fit().calibration.model_dump()))
    assert load_calibration(path, SHA).id.startswith("fmr-v1/p@aaaaaaaaaaaa/")
    with pytest.raises(ConfigError, match="made for recogniser weights"):
        load_calibration(path, "c" * 64)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="cannot load calibration"):
        load_calibration(path, SHA)


def test_committed_calibration_matches_the_default_pack() -> None:
    from fvs.runtime.manifest import load_manifest

    models = Path(__file__).resolve().parents[2] / "models"
    manifest, _ = load_manifest(models, "buffalo_sc")
    mapping = load_calibration(models / "buffalo_sc.calibration.json", manifest.recognizer.sha256)
    assert mapping.calibration.impostor_pairs > 5_000_000
    assert mapping.percent(0.0) < 20
    assert mapping.percent(0.5) > 90
