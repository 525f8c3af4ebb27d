"""Fitting the FMR-anchored cosine -> percent mapping on impostor and genuine scores."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np

from fvs.evaluation.metrics import Scores, threshold_at_fmr
from fvs.pipeline.regions import RegionModel
from fvs.pipeline.score import (
    MAX_DECADES,
    POINTS_PER_DECADE,
    Calibration,
    CalibrationPoint,
)

STEP_DECADES = 0.25  # one table point every quarter decade (5 percentage points)


def anchor_grid() -> tuple[np.ndarray, np.ndarray]:
    """(percents, FMRs) of the table points: 0, 5, ..., 100 % and 10^0 .. 10^-5."""
    decades = np.arange(0.0, MAX_DECADES + 1e-9, STEP_DECADES)
    return np.round(decades * POINTS_PER_DECADE, 6), 10.0**-decades


def fit_calibration(
    genuine: Scores,
    impostor: Scores,
    *,
    model_id: str,
    recognizer_sha256: str,
    detector_sha256: str,
    dataset: str,
    regions: RegionModel | None = None,
    method: str = "fmr-v1",
) -> Calibration:
    """The cosine at which FMR falls to each 10^-k (k = 0, 0.25, ..., 5) on ``impostor``.

    Needs at least 10^5 impostor scores to reach FMR 1e-5 (100 %).
    """
    need = int(10**MAX_DECADES)
    if impostor.size < need:
        raise ValueError(
            f"{impostor.size} impostor pairs; at least {need} are needed to "
            f"anchor 100 % at FMR 1e-{MAX_DECADES:g}"
        )
    points: list[CalibrationPoint] = []
    previous = -np.inf
    for k in np.arange(0.0, MAX_DECADES + 1e-9, STEP_DECADES):
        fmr = float(10.0**-k)
        threshold = threshold_at_fmr(impostor, fmr)
        assert threshold is not None
        cosine = max(threshold, np.nextafter(previous, np.inf))  # keep strictly increasing
        previous = cosine
        points.append(
            CalibrationPoint(
                percent=round(float(k * POINTS_PER_DECADE), 6),
                fmr=fmr,
                cosine=float(cosine),
                fnmr=float(np.mean(genuine < cosine)) if genuine.size else None,
                impostors_accepted=int(np.count_nonzero(impostor >= cosine)),
            )
        )
    digest_of = json.dumps([p.cosine for p in points]).encode() + dataset.encode()
    if regions is not None:
        digest_of += regions.model_dump_json().encode()
    digest = hashlib.sha256(digest_of).hexdigest()[:8]
    if regions is not None:
        method = f"fmr-{regions.method}"
    return Calibration(
        format=1 if regions is None else 2,
        regions=regions,
        id=f"{method}/{model_id}/{digest}",
        model_id=model_id,
        recognizer_sha256=recognizer_sha256,
        detector_sha256=detector_sha256,
        dataset=dataset,
        genuine_pairs=int(genuine.size),
        impostor_pairs=int(impostor.size),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        table=points,
    )
