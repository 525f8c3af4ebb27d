"""The matching core: active templates of one model in a contiguous float32 matrix with a
citizen ID -> row map, so a verification reads one row and takes one dot product instead of
a SQL round trip. The store stays the source of truth; the index is rebuilt from it at start
and kept in step by the service on every enrolment and erasure."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fvs.store.base import CitizenStore

Vector = npt.NDArray[np.float32]


class TemplateIndex:
    """Thread-safe for concurrent readers and writers (writes take a lock; reads of a row
    that is being replaced see the old or the new vector, never a mix, because a new version
    goes to a new row)."""

    def __init__(
        self, model_id: str, dim: int, capacity: int = 1024, memmap_path: Path | None = None
    ) -> None:
        self.model_id = model_id
        self.dim = dim
        self._lock = threading.Lock()
        self._rows: dict[int, tuple[int, int]] = {}  # citizen id -> (row, template version)
        self._size = 0
        self._memmap_path = memmap_path
        self._matrix = self._allocate(max(capacity, 16))
        self.failed: list[str] = []  # citizens left out when built from the store

    def _allocate(self, capacity: int) -> Vector:
        if self._memmap_path is None:
            return np.empty((capacity, self.dim), dtype=np.float32)
        # one file per capacity: growing never rewrites the file readers are mapped to
        path = self._memmap_path.with_suffix(f".{capacity}.npy")
        return np.lib.format.open_memmap(
            path, mode="w+", dtype=np.float32, shape=(capacity, self.dim)
        )

    @classmethod
    def from_vectors(
        cls,
        model_id: str,
        ids: Iterable[str],
        vectors: Vector,
        versions: Iterable[int] | None = None,
        memmap_path: Path | None = None,
    ) -> TemplateIndex:
        """Bulk build: row k holds vectors[k]."""
        index = cls(model_id, vectors.shape[1], capacity=vectors.shape[0], memmap_path=memmap_path)
        index._matrix[: vectors.shape[0]] = vectors
        index._size = vectors.shape[0]
        version_list = list(versions) if versions is not None else [1] * vectors.shape[0]
        index._rows = {
            int(cid): (k, v) for k, (cid, v) in enumerate(zip(ids, version_list, strict=True))
        }
        return index

    @classmethod
    def from_store(cls, store: CitizenStore, model_id: str, dim: int) -> TemplateIndex:
        """Every active template of ``model_id``; rows that fail their integrity check are
        left out (``failed``): verifying such a citizen reads the store and gets the reason."""
        index = cls(model_id, dim)
        for chunk in store.active_templates(model_id):
            index.put_many(chunk.ids, chunk.vectors, chunk.versions)
            index.failed.extend(chunk.failed)
        return index

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def matrix(self) -> Vector:
        return self._matrix[: self._size]

    def lookup(self, citizen_id: str) -> tuple[Vector, int] | None:
        """(template (D,) float32, version) of the citizen's active template, or None."""
        hit = self._rows.get(int(citizen_id))
        if hit is None:
            return None
        return self._matrix[hit[0]], hit[1]

    def score(self, citizen_id: str, probe: Vector) -> tuple[float, int] | None:
        """(cosine, template version), or None when the citizen is not in the index."""
        hit = self._rows.get(int(citizen_id))
        if hit is None:
            return None
        return float(np.dot(self._matrix[hit[0]], probe)), hit[1]

    def score_many(self, citizen_ids: list[str], probes: Vector) -> npt.NDArray[np.float32]:
        """Cosines of N (id, probe) pairs in one gather + einsum; NaN where not indexed."""
        rows = np.array([self._rows.get(int(c), (-1, 0))[0] for c in citizen_ids])
        present = rows >= 0
        out = np.full(len(citizen_ids), np.nan, dtype=np.float32)
        if present.any():
            out[present] = np.einsum("ij,ij->i", self._matrix[rows[present]], probes[present])
        return out

    def put(self, citizen_id: str, vector: Vector, version: int) -> None:
        with self._lock:
            if self._size == self._matrix.shape[0]:
                grown = self._allocate(self._matrix.shape[0] * 2)
                grown[: self._size] = self._matrix[: self._size]
                self._matrix = grown
            self._matrix[self._size] = vector
            self._rows[int(citizen_id)] = (self._size, version)
            self._size += 1

    def put_many(self, ids: list[str], vectors: Vector, versions: list[int]) -> None:
        """Append rows in one copy (building from the store)."""
        with self._lock:
            need = self._size + len(ids)
            if need > self._matrix.shape[0]:
                capacity = self._matrix.shape[0]
                while capacity < need:
                    capacity *= 2
                grown = self._allocate(capacity)
                grown[: self._size] = self._matrix[: self._size]
                self._matrix = grown
            self._matrix[self._size : need] = vectors
            for k, (cid, version) in enumerate(zip(ids, versions, strict=True)):
                self._rows[int(cid)] = (self._size + k, version)
            self._size = need

    def version_of(self, citizen_id: str) -> int | None:
        hit = self._rows.get(int(citizen_id))
        return hit[1] if hit is not None else None

    def remove(self, citizen_id: str) -> None:
        with self._lock:
            self._rows.pop(int(citizen_id), None)
