"""When is an enrolled face a duplicate of a new one?

The threshold is a false-match rate per comparison, ``max_fmr``, read through the model pack's
calibration (issue 4/15): the similarity at which impostor pairs of the pair's own regions
match that rarely. Region-keyed calibrations blend the three region-pair thresholds by the
pair's membership weights, exactly as a Verify score blends its tables, so that East and
Southeast Asian faces, whose impostors score higher, get a higher bar. Below the lowest FMR
the calibration measured (its table ends at 1e-5), each region pair's exponential tail fit
extrapolates; a calibration without a tail extrapolates its table's last decade.

With ``n`` citizens enrolled, an enrolment of a new person raises a false alarm with
probability ``1 - (1 - max_fmr) ** n`` (FPIR, ISO/IEC 19795-1), so the rate per comparison a
registry can afford shrinks with its size: :func:`expected_fpir` gives the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fvs.pipeline.regions import REGION_PAIRS, tail_threshold
from fvs.pipeline.score import CalibratedMapping, ScoreMapping, fmr_for_percent, percent_for_fmr

Vectors = npt.NDArray[np.float32]


def expected_fpir(max_fmr: float, enrolled: int) -> float:
    """The chance that a new person's enrolment matches at least one of ``enrolled`` others
    (independent comparisons at ``max_fmr`` each)."""
    return float(-math.expm1(enrolled * math.log1p(-max_fmr)))


def _threshold_of_table(
    cosines: npt.NDArray[np.float64], percents: npt.NDArray[np.float64], fmr: float
) -> float:
    """The table's similarity at ``fmr``; below its last point, its last decade extended."""
    percent = percent_for_fmr(fmr)
    if fmr >= fmr_for_percent(float(percents[-1])):
        return float(np.interp(percent, percents, cosines))
    # log-linear extension of the last decade (points_per_decade percent per decade)
    lo = float(np.interp(percents[-1] - 20.0, percents, cosines))
    hi = float(cosines[-1])
    decades = math.log10(fmr_for_percent(float(percents[-1])) / fmr)
    return hi + (hi - lo) * decades


@dataclass(frozen=True)
class DuplicateRule:
    """``thresholds``: the similarity bar per region pair (in-in, in-out, out-out), or one
    bar for every pair when the calibration has no regions."""

    max_fmr: float
    thresholds: tuple[float, ...]
    mapping: CalibratedMapping | None  # None: bars only (evaluation tests), scores 0

    @classmethod
    def from_mapping(cls, mapping: ScoreMapping, max_fmr: float) -> DuplicateRule:
        if not 0.0 < max_fmr < 1.0:
            raise ValueError("max_fmr must lie in (0, 1)")
        if not isinstance(mapping, CalibratedMapping):
            # uncalibrated (logistic fallback): its FMR estimate is the only reading there is
            raise ValueError(
                "duplicate search needs a calibrated model pack (its calibration file)"
            )
        table = mapping.calibration.table
        cosines = np.array([p.cosine for p in table], dtype=np.float64)
        percents = np.array([p.percent for p in table], dtype=np.float64)
        if mapping.regions is None:
            return cls(max_fmr, (_threshold_of_table(cosines, percents, max_fmr),), mapping)
        model = mapping.regions.model
        bars = []
        for name in REGION_PAIRS:
            tail = model.tails.get(name)
            region_table = np.asarray(model.tables[name], dtype=np.float64)
            if max_fmr < fmr_for_percent(float(percents[-1])) and tail is not None:
                bars.append(tail_threshold(tail, max_fmr))
            else:
                bars.append(_threshold_of_table(region_table, percents, max_fmr))
        return cls(max_fmr, tuple(bars), mapping)

    @property
    def floor(self) -> float:
        """No pair below this similarity can be a duplicate (the candidate search's cut)."""
        return min(self.thresholds)

    def bars(self, probe: Vectors, candidates: Vectors) -> npt.NDArray[np.float64]:
        """The similarity each (probe, candidate k) pair must reach: (K,) for a (D,) probe
        and (K, D) candidates."""
        n = candidates.shape[0]
        if len(self.thresholds) == 1 or n == 0:
            return np.full(n, self.thresholds[0], dtype=np.float64)
        assert self.mapping is not None and self.mapping.regions is not None
        scorer = self.mapping.regions
        members = scorer.membership(np.concatenate([probe[None, :], candidates]))
        weights = scorer.pair_weights(np.full(n, members[0]), members[1:])  # (K, 3)
        return np.asarray(weights @ np.asarray(self.thresholds), dtype=np.float64)

    def is_duplicate(
        self, probe: Vectors, candidates: Vectors, similarities: npt.NDArray[np.floating]
    ) -> npt.NDArray[np.bool_]:
        return np.asarray(similarities, dtype=np.float64) >= self.bars(probe, candidates)

    def score(self, similarity: float, probe: Vectors, candidate: Vectors) -> float:
        """The candidate's Verify-scale percent score (the same number Verify would give)."""
        if self.mapping is None:
            return 0.0
        return self.mapping.score(similarity, probe, candidate)[0]
