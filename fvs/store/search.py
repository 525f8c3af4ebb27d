"""1:N search over the template index: which enrolled citizens look most like this face?

A faiss index over the rows of :class:`fvs.store.index.TemplateIndex`, with the row number as
the faiss id. The template index is append-only (a new version takes a new row, an erasure
only forgets the citizen's row), so this index follows it by adding the rows it has not seen
yet before each search, and tells live rows from dead ones by asking the template index: an
erased citizen or a replaced version never comes back as a candidate, without any removal
from faiss. Dead rows are dropped when the index is rebuilt
(:meth:`fvs.dedup.search.DuplicateSearch.maybe_rebuild`).

Three kinds; ``auto`` takes ``flat`` up to ``flat_max`` rows and ``pq`` above (README
"Duplicate search" and docs/benchmarks/dedup_search*.json give the measurements):

* ``flat``: every row, brute force: inner products over float16 copies (faiss
  ``IndexScalarQuantizer`` fp16, needing no training; 1 KB a 512-d template), the shortlist
  re-scored exactly.
* ``pq``: every row, brute force, over 4-bit product-quantised codes scanned by SIMD
  (``IndexPQFastScan``, dim/8 sub-quantizers: 32 bytes a 512-d template), the shortlist
  re-scored exactly. Duplicate pairs sit at cosines of 0.4-0.6, far apart in 512
  dimensions: an inverted file misses them unless it searches about half its cells (measured:
  0.91 of planted duplicates in the shortlist with a quarter of 256 cells probed), while a
  full scan of compact codes keeps them (0.997 at 10^6) for a cost linear in the rows.
* ``ivf``: an inverted file over ``nlist`` k-means cells with 4-bit product-quantised codes
  scanned by SIMD (``IndexIVFPQFastScan``: 32 bytes a template), searched in ``nprobe``
  cells for a shortlist whose candidates are then scored exactly from the template index.
  Approximate only in which candidates make the shortlist; every similarity it returns is
  exact.

Thread-safe: searches and catch-ups take one lock (enrolments are rare next to verifications,
and a search costs milliseconds).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from fvs.store.index import TemplateIndex

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
KINDS = ("auto", "flat", "pq", "ivf")
_ADD_BLOCK = 65536


@dataclass(frozen=True)
class Candidate:
    citizen_id: str
    similarity: float  # exact cosine to the enrolled template
    version: int  # the template version it was compared with
    row: int


@dataclass(frozen=True)
class SearchParams:
    """``flat_max``: ``auto`` searches float16 copies of every row up to this many rows,
    product-quantised codes of every row (``pq``) above;
    ``nlist``: IVF cells (0: about 2 sqrt(n), a power of two); ``nprobe``: cells searched
    (0: nlist / 16, at least 32); ``shortlist``: candidates re-scored exactly;
    ``search_threads``: OpenMP threads of one search (1: on a shared machine a single query
    spread over several threads waits on the busiest core, benchmarks/dedup_search.py)."""

    kind: str = "auto"
    flat_max: int = 10_000
    nlist: int = 0
    nprobe: int = 0
    shortlist: int = 256
    search_threads: int = 1

    def resolve(self, rows: int) -> str:
        if self.kind not in KINDS:
            raise ValueError(f"unknown search index kind {self.kind!r}")
        if self.kind != "auto":
            return self.kind
        return "flat" if rows <= self.flat_max else "pq"

    def cells(self, rows: int) -> int:
        if self.nlist:
            return self.nlist
        return int(min(16384, max(64, 2 ** round(math.log2(2 * math.sqrt(max(rows, 1)))))))

    def probes(self, nlist: int) -> int:
        return min(nlist, self.nprobe or max(32, nlist // 16))


class SearchIndex:
    """faiss over ``templates``'s rows [0, covered)."""

    def __init__(self, templates: TemplateIndex, params: SearchParams | None = None) -> None:
        self.templates = templates
        self.params = params or SearchParams()
        self._lock = threading.Lock()
        self.kind = self.params.resolve(templates.rows_used)
        self._index: Any = self._empty(templates.rows_used)  # faiss.Index (or IVF)
        self._covered = 0
        self.trained_on = 0  # rows the template index had when this index was built
        self.skipped = 0  # rows covered but left out (dead when they were reached)
        self.build_seconds = 0.0

    # building -------------------------------------------------------------------------
    def _empty(self, rows: int) -> Any:
        dim = self.templates.dim
        if self.kind == "flat":
            flat = faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            return faiss.IndexIDMap2(flat)
        if self.kind == "pq":
            # 4-bit PQ with dim/8 sub-quantizers (64 for 512-d): 32 bytes a code; IndexIDMap
            # (8 bytes a row) rather than IDMap2, whose reverse map costs ~10x that
            return faiss.IndexIDMap(
                faiss.IndexPQFastScan(dim, dim // 8, 4, faiss.METRIC_INNER_PRODUCT)
            )
        nlist = self.params.cells(rows)
        quantizer = faiss.IndexFlatIP(dim)
        # 4-bit PQ with dim/8 sub-quantizers (64 for 512-d): 32 bytes a code
        index = faiss.IndexIVFPQFastScan(
            quantizer, dim, nlist, dim // 8, 4, faiss.METRIC_INNER_PRODUCT
        )
        index.nprobe = self.params.probes(nlist)
        return index

    def _train(self) -> None:
        """IVF: k-means cells and PQ codebooks, PQ: codebooks, from a sample of the rows."""
        if self.kind == "flat" or self._index.is_trained:
            return
        index = self._index
        size = self.templates.rows_used
        if self.kind == "pq":
            if size < 1024:
                raise ValueError(
                    f"a product-quantised index needs at least 1024 templates to train its "
                    f"codebooks ({size} enrolled): use the flat kind"
                )
            rng = np.random.default_rng(0)
            want = min(size, 65536)
            rows = np.sort(rng.choice(size, size=want, replace=False)) if size > want else None
            index.train(
                self.templates.gather(rows) if rows is not None else self.templates.vectors(0, size)
            )
            return
        want = min(size, max(64 * int(index.nlist), 65536), 262_144)
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(size, size=want, replace=False)) if size > want else None
        sample = (
            self.templates.gather(rows) if rows is not None else self.templates.vectors(0, size)
        )
        if sample.shape[0] < int(index.nlist):
            raise ValueError(
                f"an IVF index of {index.nlist} cells needs at least as many templates "
                f"({sample.shape[0]} enrolled): use the flat kind"
            )
        index.train(sample)

    def build(self) -> SearchIndex:
        """Train (IVF) and add every row written so far; returns self."""
        start = time.perf_counter()
        with self._lock:
            self.trained_on = self.templates.rows_used
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # a search may have lowered it
            self._train()
            self._catch_up()
        self.build_seconds = time.perf_counter() - start
        log.info(
            "duplicate search index: %s over %d rows in %.1f s (%.0f MB)",
            self.kind,
            self._covered,
            self.build_seconds,
            self.nbytes / 1e6,
        )
        return self

    def _catch_up(self) -> None:
        """Add the rows the template index wrote since the last call (lock held)."""
        size = self.templates.rows_used
        while self._covered < size:
            end = min(size, self._covered + _ADD_BLOCK)
            ids = np.arange(self._covered, end, dtype=np.int64)
            live = self.templates.live(ids)  # rows already dead never go in
            if live.any():
                self._index.add_with_ids(self.templates.gather(ids[live]), ids[live])
            self.skipped += int(ids.size - live.sum())
            self._covered = end

    # searching ------------------------------------------------------------------------
    def search(self, probe: Vector, k: int, exclude: str | None = None) -> list[Candidate]:
        """The ``k`` most similar live templates (exact cosines, best first), leaving out
        citizen ``exclude``."""
        probe = np.ascontiguousarray(probe, dtype=np.float32).reshape(1, -1)
        excluded = None if exclude is None else np.array([int(exclude)], dtype=np.int64)
        return self.search_many(probe, k, excluded)[0]

    def search_many(
        self,
        probes: Vector,
        k: int,
        exclude: npt.NDArray[np.int64] | None = None,
    ) -> list[list[Candidate]]:
        """:meth:`search` for (n, D) probes in one faiss call; ``exclude[i]``: the citizen
        (as a number) left out of probe i's answer."""
        n = probes.shape[0]
        if k <= 0 or n == 0:
            return [[] for _ in range(n)]
        probes = np.ascontiguousarray(probes, dtype=np.float32)
        dead = self.templates.dead_rows
        # over-fetch: dead rows and the excluded citizen are dropped after the search
        fetch = max(k + 1 + min(dead, 4 * k), self.params.shortlist)
        with self._lock:
            self._catch_up()
            if self._covered == 0:
                return [[] for _ in range(n)]
            # per calling thread (an OpenMP setting is the thread's own)
            faiss.omp_set_num_threads(self.params.search_threads)
            _, found = self._index.search(probes, min(fetch, self._covered))
        out: list[list[Candidate]] = []
        for i in range(n):
            rows = found[i][found[i] >= 0].astype(np.int64)
            rows = rows[self.templates.live(rows)] if rows.size else rows
            owners = self.templates.owners(rows)
            if exclude is not None and rows.size:
                keep = owners != exclude[i]
                rows, owners = rows[keep], owners[keep]
            if rows.size == 0:
                out.append([])
                continue
            # exact, whatever the faiss kind; einsum, not BLAS: a BLAS call this small spreads
            # over threads that wait on busy cores (milliseconds on a shared machine)
            sims = np.einsum("ij,j->i", self.templates.gather(rows), probes[i])
            order = np.argsort(-sims, kind="stable")[:k]
            versions = self.templates.versions_of(rows)
            out.append(
                [
                    Candidate(
                        citizen_id=f"{int(owners[j]):013d}",
                        similarity=float(sims[j]),
                        version=int(versions[j]),
                        row=int(rows[j]),
                    )
                    for j in order
                ]
            )
        return out

    # facts ------------------------------------------------------------------------------
    @property
    def covered(self) -> int:
        return self._covered

    @property
    def dead(self) -> int:
        """Rows in this index that are no longer a citizen's active template."""
        return self.templates.dead_rows - self.skipped

    @property
    def nbytes(self) -> int:
        """Memory of the faiss index itself (the template index's rows are not counted)."""
        dim = self.templates.dim
        if self.kind == "flat":
            return self._covered * (dim * 2 + 16)
        if self.kind == "pq":  # codes and ids per row, and the codebooks
            return self._covered * (dim // 16 + 8) + 16 * dim * 4
        # codes (dim/8 sub-quantizers x 4 bits) and ids per row, plus the cell centroids
        return self._covered * (dim // 16 + 8) + int(self._index.nlist) * dim * 4

    def to_bytes(self) -> npt.NDArray[np.uint8]:
        """The faiss index, serialised (to persist beside the template index's snapshot)."""
        return self.serialised()[0]

    def serialised(self) -> tuple[npt.NDArray[np.uint8], int]:
        """(the faiss index serialised, the rows it covers), taken together."""
        with self._lock:
            data: npt.NDArray[np.uint8] = faiss.serialize_index(self._index)
            return data, self._covered

    @classmethod
    def from_bytes(
        cls,
        templates: TemplateIndex,
        data: npt.NDArray[np.uint8],
        covered: int,
        params: SearchParams | None = None,
    ) -> SearchIndex:
        """An index persisted by :meth:`to_bytes` after covering ``covered`` rows of this
        same template index (same row numbering); rows written since are added at once."""
        if covered > templates.rows_used:
            raise ValueError("the persisted search index covers rows the template index lacks")
        made = cls(templates, params)
        index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        if index.d != templates.dim or index.ntotal > covered:
            raise ValueError("the persisted search index does not fit this template index")
        made._index = index
        inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
        made.kind = (
            "ivf"
            if isinstance(index, faiss.IndexIVF)
            else "pq"
            if isinstance(inner, faiss.IndexPQFastScan)
            else "flat"
        )
        made._covered = covered
        made.skipped = covered - int(index.ntotal)  # rows left out when they were covered
        made.trained_on = covered
        with made._lock:
            made._catch_up()
        return made
