"""Cosine similarity and its documented mapping to a percentage match score."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fvs.domain import Embedding


def cosine(a: Embedding, b: Embedding) -> float:
    """Cosine similarity of two L2-normalised (D,) vectors."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


@dataclass(frozen=True)
class ScoreMapping:
    """match_score = 100 / (1 + exp(-slope * (cosine - midpoint))), in percent.

    Strictly increasing in the cosine; 50 % at ``midpoint``. Provisional: not yet calibrated
    to a false-match rate (see README "Match score").
    """

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
