"""Region-keyed FMR calibration: the false-match rate of a comparison depends on where both
faces sit in the embedding space, not on any label the caller gives.

Impostor pairs of East and Southeast Asian faces score higher with buffalo_sc than impostor
pairs of other faces (LFW, UTKFace: 5-25x the FMR the global table promises). The calibration
file can therefore carry, besides the global table, a *region model*:

- two small reference cohorts of templates: faces of the calibration set's labelled group
  (the "region") and faces of everyone else;
- a membership m(x) in [0, 1] for any face x:

      f(x) = mean of the k highest cosines of x to the region cohort
             - mean of the k highest cosines of x to the other cohort
      m(x) = 1 / (1 + exp(-(a f(x) + b)))          (a, b fitted on the calibration set)

- three tables, like the global one (the similarity at which FMR falls to each anchor), for
  region pairs "in-in", "in-out" and "out-out", fitted on the calibration set's labelled
  impostor pairs (both faces in the group, one, none), with an exponential tail fitted where
  a region pair has too few pairs to reach an anchor.

At serve time the pair's table is the blend of the three with weights m(x) m(y),
m(x) (1 - m(y)) + m(y) (1 - m(x)) and (1 - m(x)) (1 - m(y)), and the score is read from it as
from the global table. No group label is given or stored per request: the
membership is a property of the two embeddings. Cost: one (2, D) x (D, N) product and two
partial sorts over N cohort templates, about 0.05 ms for N = 500 (benchmarks/score_norm.py).
"""

from __future__ import annotations

import base64
import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

REGION_PAIRS = ("in-in", "in-out", "out-out")

Vectors = npt.NDArray[np.float32]


def encode_vectors(vectors: npt.NDArray[np.floating]) -> str:
    """(N, D) -> base64 of little-endian float16 (half the size of float32; cosines of
    unit vectors change by < 1e-3)."""
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f2").tobytes()).decode()


def decode_vectors(text: str, dim: int) -> Vectors:
    data = base64.b64decode(text, validate=True)
    if len(data) % (2 * dim):
        raise ValueError(f"cohort of {len(data)} bytes is not a whole number of {dim}-vectors")
    return np.frombuffer(data, dtype="<f2").reshape(-1, dim).astype(np.float32)


class TailFit(BaseModel):
    """Exponential tail of one region pair's impostor scores above ``threshold``:
    FMR(t) = exceed_rate x exp(-(t - threshold) / scale). Used for anchors the pairs cannot
    reach empirically (fewer than ``min_exceedances`` weighted pairs above the threshold)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float
    exceed_rate: float = Field(gt=0, le=1)
    scale: float = Field(gt=0)
    effective_pairs: float
    empirical_down_to_fmr: float


class RegionModel(BaseModel):
    """The region part of a calibration file (format 2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["region-knn-v1"] = "region-knn-v1"
    region: str  # the calibration set's group the region cohort was drawn from
    dim: int = Field(gt=0)
    k: int = Field(gt=0)
    region_cohort: str  # base64 float16 (N_in, dim), unit vectors
    other_cohort: str  # base64 float16 (N_out, dim)
    logistic: tuple[float, float]  # a, b of m = 1 / (1 + exp(-(a f + b)))
    tables: dict[str, list[float]]  # region pair -> similarity at each table percent
    effective_pairs: dict[str, float]  # region pair -> sum of the pair weights
    tails: dict[str, TailFit | None]
    source: str


class RegionScorer:
    """Serving side of a RegionModel: membership of faces, and the blended table of a pair."""

    def __init__(self, model: RegionModel, percents: npt.NDArray[np.float64]) -> None:
        self.model = model
        self.percents = percents
        self.region = decode_vectors(model.region_cohort, model.dim)
        self.other = decode_vectors(model.other_cohort, model.dim)
        if min(self.region.shape[0], self.other.shape[0]) < model.k:
            raise ValueError(f"each cohort needs at least k = {model.k} templates")
        self._cohort = np.concatenate([self.region, self.other]).T.copy()  # (D, N)
        self._n_in = self.region.shape[0]
        tables = []
        for name in REGION_PAIRS:
            table = np.asarray(model.tables[name], dtype=np.float64)
            if table.shape != percents.shape or np.any(np.diff(table) <= 0):
                raise ValueError(f"region table {name}: {table.size} strictly increasing values")
            tables.append(table)
        self._tables = np.stack(tables)  # (3, P)
        self._a, self._b = model.logistic

    def affinity(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """f(x) for (N, D) unit vectors: top-k mean cosine to the region cohort minus to the
        other cohort."""
        x = np.asarray(vectors, dtype=np.float32)
        # A serving call scores 2 to ~20 faces: einsum keeps that product on this thread
        # (measured: a BLAS call this small spread over busy cores took ~50 ms under load,
        # against < 1 ms here); evaluation's thousands of faces go through BLAS.
        small = x.shape[0] <= 32
        sims = np.einsum("nd,dk->nk", x, self._cohort) if small else x @ self._cohort
        k = self.model.k
        top_in = -np.partition(-sims[:, : self._n_in], k - 1, axis=1)[:, :k]
        top_out = -np.partition(-sims[:, self._n_in :], k - 1, axis=1)[:, :k]
        diff: npt.NDArray[np.float64] = top_in.mean(axis=1, dtype=np.float64) - top_out.mean(
            axis=1, dtype=np.float64
        )
        return diff

    def membership(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """m(x) in [0, 1] for (N, D) unit vectors."""
        z = np.clip(self._a * self.affinity(vectors) + self._b, -60.0, 60.0)
        return 1.0 / (1.0 + np.exp(-z))

    def pair_weights(
        self, m_a: npt.NDArray[np.float64], m_b: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """(N, 3) weights of in-in, in-out, out-out for pairs with memberships m_a, m_b."""
        return np.stack(
            [m_a * m_b, m_a * (1 - m_b) + m_b * (1 - m_a), (1 - m_a) * (1 - m_b)], axis=-1
        )

    def table_for(self, m_a: float, m_b: float) -> npt.NDArray[np.float64]:
        """The pair's table: similarity at each percent, strictly increasing (a convex blend
        of strictly increasing tables)."""
        w = self.pair_weights(np.array([m_a]), np.array([m_b]))[0]
        return np.asarray(w @ self._tables, dtype=np.float64)

    def percent(
        self, similarity: float, a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]
    ) -> float:
        m = self.membership(np.stack([a, b]))
        table = self.table_for(float(m[0]), float(m[1]))
        return float(np.interp(similarity, table, self.percents, left=0.0, right=100.0))

    def percents_of_pairs(
        self,
        similarity: npt.NDArray[np.float64],
        m_a: npt.NDArray[np.float64],
        m_b: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """Vectorised percent for many pairs (evaluation): same result as ``percent``."""
        w = self.pair_weights(m_a, m_b)  # (N, 3)
        out = np.empty(similarity.size, dtype=np.float64)
        step = 200_000
        for start in range(0, similarity.size, step):
            sl = slice(start, start + step)
            tables = w[sl] @ self._tables  # (n, P)
            s = similarity[sl]
            # the index of the first table value above s, per row
            idx = np.sum(tables <= s[:, None], axis=1)
            lo = np.clip(idx - 1, 0, tables.shape[1] - 1)
            hi = np.clip(idx, 0, tables.shape[1] - 1)
            rows = np.arange(tables.shape[0])
            t_lo, t_hi = tables[rows, lo], tables[rows, hi]
            frac = np.where(t_hi > t_lo, (s - t_lo) / np.where(t_hi > t_lo, t_hi - t_lo, 1), 0)
            val = self.percents[lo] + frac * (self.percents[hi] - self.percents[lo])
            val = np.where(idx == 0, 0.0, np.where(idx >= tables.shape[1], 100.0, val))
            out[sl] = val
        return out


def tail_threshold(tail: TailFit, fmr: float) -> float:
    """The similarity at which the tail model's FMR falls to ``fmr``."""
    return tail.threshold + tail.scale * math.log(tail.exceed_rate / fmr)
