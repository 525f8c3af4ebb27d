"""Cosine similarity and its mapping to a percentage match score.

The production mapping is FMR-anchored (a calibration file made by `fvs calibrate`):

    match_score = 20 x (-log10 FMR(cosine)), clipped to 0..100

so 20 % means a false-match rate of 1 in 10, 60 % 1 in 1,000, 80 % 1 in 10,000 and 100 % 1 in
100,000 or rarer, whatever the model pack. Without a calibration file a provisional logistic
mapping is used and no FMR is claimed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fvs.domain import Embedding
from fvs.errors import ConfigError
from fvs.pipeline.regions import RegionModel, RegionScorer

POINTS_PER_DECADE = 20.0  # match_score points per decade of FMR
MAX_DECADES = 5.0  # 100 % = FMR 1e-5


def cosine(a: Embedding, b: Embedding) -> float:
    """Cosine similarity of two L2-normalised (D,) vectors."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


def percent_for_fmr(fmr: float) -> float:
    if fmr <= 0:
        return 100.0
    return float(min(100.0, max(0.0, -POINTS_PER_DECADE * math.log10(fmr))))


def fmr_for_percent(percent: float) -> float:
    return float(10.0 ** (-min(100.0, max(0.0, percent)) / POINTS_PER_DECADE))


class ScoreMapping(Protocol):
    @property
    def id(self) -> str: ...

    def percent(self, similarity: float) -> float: ...

    def fmr(self, similarity: float) -> float | None:
        """Estimated false-match rate at this similarity; None when uncalibrated."""
        ...

    def score(
        self, similarity: float, probe: Embedding, enrolled: Embedding
    ) -> tuple[float, float | None]:
        """(match_score percent, estimated FMR or None) of one comparison; a region-keyed
        calibration reads both embeddings, the others only the similarity."""
        ...


@dataclass(frozen=True)
class LogisticMapping:
    """Provisional: 100 / (1 + exp(-slope * (cosine - midpoint))); claims no FMR."""

    midpoint: float = 0.30
    slope: float = 20.0

    @property
    def id(self) -> str:
        return f"logistic-v1(mid={self.midpoint:g},slope={self.slope:g})"

    def percent(self, similarity: float) -> float:
        z = -self.slope * (similarity - self.midpoint)
        if z > 700:  # exp overflow: the score is 0 to double precision
            return 0.0
        return 100.0 / (1.0 + math.exp(z))

    def fmr(self, similarity: float) -> float | None:
        return None

    def score(
        self, similarity: float, probe: Embedding, enrolled: Embedding
    ) -> tuple[float, float | None]:
        return self.percent(similarity), None


class CalibrationPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float = Field(ge=0, le=100)
    fmr: float = Field(ge=0, le=1)
    cosine: float = Field(ge=-1.0001, le=1.0001)
    fnmr: float | None = None
    impostors_accepted: int | None = None


class Calibration(BaseModel):
    """A versioned cosine -> percent table for one recogniser (models/<pack>.calibration.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(default=1, ge=1, le=2)  # 2: with a region model
    id: str
    model_id: str
    recognizer_sha256: str
    detector_sha256: str
    dataset: str
    genuine_pairs: int
    impostor_pairs: int
    created_at: str
    points_per_decade: float = POINTS_PER_DECADE
    max_decades: float = MAX_DECADES
    table: list[CalibrationPoint]
    # Region-keyed tables (fvs/pipeline/regions.py); None: the global table for every pair.
    regions: RegionModel | None = None


class CalibratedMapping:
    """Piecewise-linear in the cosine between the calibration's points; strictly increasing.
    With a region model, each comparison is read from its own pair's blended table."""

    def __init__(self, calibration: Calibration) -> None:
        self.calibration = calibration
        cosines = np.array([p.cosine for p in calibration.table], dtype=np.float64)
        if cosines.size < 2 or np.any(np.diff(cosines) <= 0):
            raise ConfigError(f"calibration {calibration.id}: cosines must strictly increase")
        self._cosines = cosines
        self._percents = np.array([p.percent for p in calibration.table], dtype=np.float64)
        self.regions: RegionScorer | None = None
        if calibration.regions is not None:
            try:
                self.regions = RegionScorer(calibration.regions, self._percents)
            except ValueError as exc:
                raise ConfigError(f"calibration {calibration.id}: {exc}") from exc

    @property
    def id(self) -> str:
        return self.calibration.id

    def percent(self, similarity: float) -> float:
        return float(np.interp(similarity, self._cosines, self._percents, left=0.0, right=100.0))

    def percents(self, similarity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The global table on many similarities at once (evaluation)."""
        return np.interp(similarity, self._cosines, self._percents, left=0.0, right=100.0)

    def fmr(self, similarity: float) -> float | None:
        """From the global table (every pair alike)."""
        return fmr_for_percent(self.percent(similarity))

    def score(
        self, similarity: float, probe: Embedding, enrolled: Embedding
    ) -> tuple[float, float | None]:
        if self.regions is None:
            percent = self.percent(similarity)
        else:
            percent = self.regions.percent(similarity, probe, enrolled)
        return percent, fmr_for_percent(percent)


def load_calibration(path: Path, recognizer_sha256: str) -> CalibratedMapping:
    """Load a calibration file; refuse one made for other recogniser weights."""
    try:
        calibration = Calibration.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise ConfigError(f"cannot load calibration {path}: {exc}") from exc
    if calibration.recognizer_sha256 != recognizer_sha256:
        raise ConfigError(
            f"calibration {path} ({calibration.id}) was made for recogniser weights "
            f"{calibration.recognizer_sha256[:12]}, the model pack has {recognizer_sha256[:12]}: "
            "run `fvs calibrate` for this pack"
        )
    return CalibratedMapping(calibration)
