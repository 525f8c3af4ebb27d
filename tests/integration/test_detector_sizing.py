"""Sizing the detector to the image must not cost accuracy on real faces.

On the LFW View 1 pairs when ../shared/data is present (CI has it beside the clone); on the
committed photos always.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fvs.config import Settings
from fvs.errors import FvsError
from fvs.evaluation import metrics
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import cosine
from tests.conftest import photo

LFW = Path(__file__).resolve().parents[3] / "shared" / "data" / "lfw-view1-train"


def pipelines(settings_factory: Callable[..., Settings]) -> tuple[FacePipeline, FacePipeline]:
    auto, fixed = settings_factory(), settings_factory(detector_sizes=[640])
    return (
        FacePipeline.load(auto.model, auto.pipeline),
        FacePipeline.load(fixed.model, fixed.pipeline),
    )


def test_sized_detector_agrees_on_the_committed_photos(
    settings_factory: Callable[..., Settings],
) -> None:
    auto, fixed = pipelines(settings_factory)
    for name in ["obama.jpg", "obama2.jpg", "biden.jpg", "biden2.jpg"]:
        a, f = auto.extract(photo(name)).embedding, fixed.extract(photo(name)).embedding
        assert cosine(a, f) > 0.9  # the same face, found at different scales


@pytest.mark.skipif(not LFW.exists(), reason="needs ../shared/data/lfw-view1-train")
def test_sized_detector_is_at_least_as_accurate_on_lfw_pairs(
    settings_factory: Callable[..., Settings],
) -> None:
    auto, fixed = pipelines(settings_factory)
    lines = (LFW / "pairsDevTrain.txt").read_text().splitlines()[1:]
    pairs = lines[:150] + lines[1100:1250]  # 150 genuine, 150 impostor

    def path(person: str, n: str) -> Path:
        return LFW / "images" / person / f"{person}_{int(n):04d}.jpg"

    scores: dict[str, list[float]] = {"auto": [], "fixed": []}
    failures = {"auto": 0, "fixed": 0}
    labels = []
    for line in pairs:
        f = line.split()
        a, b = (
            (path(f[0], f[1]), path(f[0], f[2]))
            if len(f) == 3
            else (path(f[0], f[1]), path(f[2], f[3]))
        )
        labels.append(len(f) == 3)
        for key, pipe in (("auto", auto), ("fixed", fixed)):
            try:
                ea = pipe.extract(a.read_bytes()).embedding
                eb = pipe.extract(b.read_bytes()).embedding
                scores[key].append(cosine(ea, eb))
            except FvsError:  # a failure to acquire counts as a wrong answer
                failures[key] += 1
                scores[key].append(-1.0 if len(f) == 3 else 1.0)
    truth = np.array(labels)
    accuracy = {
        key: metrics.kfold_accuracy(np.array(v), truth, np.arange(len(v)) % 10).mean
        for key, v in scores.items()
    }
    # On all 2,200 listed pairs the sized detector scores 99.82 % (no failure to acquire)
    # against 99.73 % at 640x640 (12 photos not acquired), see README; on this 300-pair
    # subset one pair either way is within noise.
    assert accuracy["auto"] >= accuracy["fixed"] - 1 / len(pairs) - 1e-9, accuracy
    assert accuracy["auto"] >= 0.99, accuracy
    assert failures["auto"] == 0
