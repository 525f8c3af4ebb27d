"""The matching core: active templates of one model in a contiguous matrix with a citizen ID ->
row map, so a verification reads one row and takes one dot product instead of a SQL round
trip. The store stays the source of truth; the index is rebuilt from it at start and kept in
step by the service on every enrolment and erasure (and, with several servers on one
PostgreSQL database, by :mod:`fvs.store.sync`).

Rows are float32, or compact: ``f16`` (2 bytes a dimension) or ``i8`` (1 byte a dimension
plus a float32 scale a row, so that ``scale * row`` is the unit template). At 10^7 templates
of 512 dimensions that is 20 GB, 10 GB or 5.1 GB (README "Storage backends": the measured
cosine error and LFW accuracy of each).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fvs.store.base import CitizenStore
from fvs.store.crypto import TemplateCipher
from fvs.store.snapshot import Array, load_snapshot, save_snapshot

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
_DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8}


class TemplateIndex:
    """Thread-safe for concurrent readers and writers (writes take a lock; reads of a row
    that is being replaced see the old or the new vector, never a mix, because a new version
    goes to a new row)."""

    def __init__(
        self,
        model_id: str,
        dim: int,
        capacity: int = 1024,
        memmap_path: Path | None = None,
        encoding: str = "f32",
    ) -> None:
        if encoding not in _DTYPES:
            raise ValueError(f"unknown index encoding {encoding!r}")
        self.model_id = model_id
        self.dim = dim
        self.encoding = encoding
        self._lock = threading.Lock()
        self._rows: dict[int, int] = {}  # citizen id -> row
        self._size = 0
        self._memmap_path = memmap_path
        capacity = max(capacity, 16)
        self._matrix: npt.NDArray[np.generic] = self._allocate(capacity)
        self._versions = np.zeros(capacity, dtype=np.int32)
        self._owners = np.zeros(capacity, dtype=np.int64)  # row -> citizen ID (as a number)
        self._scales = np.ones(capacity if encoding == "i8" else 0, dtype=np.float32)
        self.failed: list[str] = []  # citizens left out when built from the store
        # arrays saved beside this index's rows in its snapshot (TemplateIndex.save), e.g.
        # the serialised 1:N search index; empty when built from the store
        self.companions: dict[str, npt.NDArray[Any]] = {}
        self.snapshot_meta: dict[str, Any] = {}  # the snapshot's metadata, when loaded from one
        # The change log's sequence number at the last full read of the store: bulk loads
        # logged up to it are in the index (fvs.store.index_snapshot).
        self.base_seq = 0

    def _allocate(self, capacity: int) -> npt.NDArray[np.generic]:
        dtype = _DTYPES[self.encoding]
        if self._memmap_path is None:
            return np.empty((capacity, self.dim), dtype=dtype)
        # one file per capacity: growing never rewrites the file readers are mapped to
        path = self._memmap_path.with_suffix(f".{capacity}.npy")
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(capacity, self.dim))

    @classmethod
    def from_vectors(
        cls,
        model_id: str,
        ids: Iterable[str],
        vectors: Vector,
        versions: Iterable[int] | None = None,
        memmap_path: Path | None = None,
        encoding: str = "f32",
    ) -> TemplateIndex:
        """Bulk build: row k holds vectors[k]."""
        index = cls(
            model_id,
            vectors.shape[1],
            capacity=vectors.shape[0],
            memmap_path=memmap_path,
            encoding=encoding,
        )
        index.put_many(list(ids), vectors, list(versions or [1] * vectors.shape[0]))
        return index

    @classmethod
    def from_store(
        cls,
        store: CitizenStore,
        model_id: str,
        dim: int,
        encoding: str = "f32",
        capacity: int = 1024,
    ) -> TemplateIndex:
        """Every active template of ``model_id``; rows that fail their integrity check are
        left out (``failed``): verifying such a citizen reads the store and gets the reason.
        ``capacity``: rows to reserve (an upper bound costs no memory until rows are written,
        and spares the copies of growing: at 10^7 the last doubling alone held 8.6 GB)."""
        index = cls(model_id, dim, capacity=capacity, encoding=encoding)
        last_change = getattr(store, "last_change", None)  # SQL stores keep a change log
        if callable(last_change):  # bulk loads up to here are in what is read next
            index.base_seq = int(last_change())
        for chunk in store.active_templates(model_id):
            index.put_many(chunk.ids, chunk.vectors, chunk.versions)
            index.failed.extend(chunk.failed)
        return index

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def matrix(self) -> npt.NDArray[np.generic]:
        """The rows in use, in their stored dtype (i8 rows without their scales)."""
        return self._matrix[: self._size]

    @property
    def nbytes(self) -> int:
        return int(self._matrix.nbytes + self._versions.nbytes + self._scales.nbytes)

    def _vector(self, row: int) -> Vector:
        v: Vector = self._matrix[row].astype(np.float32, copy=False)
        if self.encoding == "i8":
            v = v * self._scales[row]
        return v

    def lookup(self, citizen_id: str) -> tuple[Vector, int] | None:
        """(template (D,) float32, version) of the citizen's active template, or None."""
        row = self._rows.get(int(citizen_id))
        if row is None:
            return None
        return self._vector(row), int(self._versions[row])

    def version_of(self, citizen_id: str) -> int | None:
        row = self._rows.get(int(citizen_id))
        return int(self._versions[row]) if row is not None else None

    def score(self, citizen_id: str, probe: Vector) -> tuple[float, int] | None:
        """(cosine, template version), or None when the citizen is not in the index."""
        row = self._rows.get(int(citizen_id))
        if row is None:
            return None
        if self.encoding == "f32":
            similarity = float(np.dot(self._matrix[row], probe))
        else:
            similarity = float(np.dot(self._vector(row), probe))
        return similarity, int(self._versions[row])

    def score_many(self, citizen_ids: list[str], probes: Vector) -> npt.NDArray[np.float32]:
        """Cosines of N (id, probe) pairs in one gather + einsum; NaN where not indexed."""
        rows = np.array([self._rows.get(int(c), -1) for c in citizen_ids])
        present = rows >= 0
        out = np.full(len(citizen_ids), np.nan, dtype=np.float32)
        if present.any():
            picked = rows[present]
            gathered = self._matrix[picked].astype(np.float32, copy=False)
            dots = np.einsum("ij,ij->i", gathered, probes[present])
            if self.encoding == "i8":
                dots *= self._scales[picked]
            out[present] = dots
        return out

    def _grow(self, need: int) -> None:
        capacity = self._matrix.shape[0]
        if need <= capacity:
            return
        while capacity < need:
            capacity *= 2
        grown = self._allocate(capacity)
        grown[: self._size] = self._matrix[: self._size]
        versions = np.zeros(capacity, dtype=np.int32)
        versions[: self._size] = self._versions[: self._size]
        owners = np.zeros(capacity, dtype=np.int64)
        owners[: self._size] = self._owners[: self._size]
        self._owners = owners
        if self.encoding == "i8":
            scales = np.ones(capacity, dtype=np.float32)
            scales[: self._size] = self._scales[: self._size]
            self._scales = scales
        self._versions = versions
        self._matrix = grown

    def _write(self, start: int, vectors: Vector) -> None:
        end = start + vectors.shape[0]
        if self.encoding == "i8":
            peak = np.max(np.abs(vectors), axis=1)
            scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
            # the scale makes the quantised row unit length: a dot product stays a cosine
            norm = np.linalg.norm(q.astype(np.float32), axis=1)
            self._scales[start:end] = np.where(norm > 0, 1.0 / np.maximum(norm, 1e-12), 1.0)
            self._matrix[start:end] = q
        else:
            self._matrix[start:end] = vectors

    def put(self, citizen_id: str, vector: Vector, version: int) -> None:
        with self._lock:
            self._grow(self._size + 1)
            self._write(self._size, np.asarray(vector, dtype=np.float32)[None, :])
            self._versions[self._size] = version
            self._owners[self._size] = int(citizen_id)
            self._rows[int(citizen_id)] = self._size
            self._size += 1

    def put_many(self, ids: list[str], vectors: Vector, versions: list[int]) -> None:
        """Append rows in one copy (building from the store)."""
        with self._lock:
            need = self._size + len(ids)
            self._grow(need)
            for start in range(0, len(ids), 65536):  # bounded temporaries
                block = np.asarray(vectors[start : start + 65536], dtype=np.float32)
                self._write(self._size + start, block)
            self._versions[self._size : need] = versions
            self._owners[self._size : need] = np.asarray(ids, dtype=np.int64)
            for k, cid in enumerate(ids):
                self._rows[int(cid)] = self._size + k
            self._size = need

    def remove(self, citizen_id: str) -> None:
        with self._lock:
            self._rows.pop(int(citizen_id), None)

    # snapshots (fvs.store.snapshot; when to take and trust one: fvs.store.index_snapshot) ---
    def export(self) -> dict[str, Array]:
        """The index as arrays, consistent, without copying the matrix: rows are append-only
        (a new version goes to a new row, growing copies to a new matrix), so rows
        [0, size) of the matrix taken here never change afterwards. Erased citizens' rows
        stay in the matrix (not in ``ids``) until a rebuild from the store."""
        with self._lock:
            n = self._size
            ids = np.fromiter(self._rows.keys(), np.int64, len(self._rows))
            rows = np.fromiter(self._rows.values(), np.int64, len(self._rows))
            matrix = self._matrix[:n]
            versions = self._versions[:n].copy()
            owners = self._owners[:n].copy()
            scales = self._scales[:n].copy()
        return {
            "matrix": matrix,
            "versions": versions,
            "owners": owners,
            "scales": scales,
            "ids": ids,
            "rows": rows,
        }

    def save(
        self,
        path: Path,
        cipher: TemplateCipher,
        binding: Mapping[str, Any],
        meta: Mapping[str, Any],
        companions: Mapping[str, Array] | None = None,
    ) -> int:
        """Seal the index to ``path`` (fvs.store.snapshot.save_snapshot); returns bytes.
        ``companions``: arrays derived from rows this index already holds (the 1:N search
        index, taken before this call, so that it covers no row the saved matrix lacks),
        saved under ``x_<name>`` and given back by :meth:`load` as ``companions``."""
        extra = {f"x_{name}": array for name, array in (companions or {}).items()}
        arrays = {**self.export(), **extra}
        meta = {**meta, "base_seq": self.base_seq, "rows": int(arrays["matrix"].shape[0])}
        return save_snapshot(path, arrays, meta, cipher, binding)

    @classmethod
    def load(
        cls,
        path: Path,
        cipher: TemplateCipher,
        model_id: str,
        dim: int,
        encoding: str,
        expect: Mapping[str, Any],
        check_meta: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> tuple[TemplateIndex, dict[str, Any]] | None:
        """The index saved at ``path``, or None (logged) when it cannot be used. The matrix is
        read straight into an index with room for a quarter more rows (untouched room costs
        no memory), so that enrolments after the start do not copy it at once."""
        made: list[TemplateIndex] = []

        def allocate(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Array:
            if name != "matrix":
                return np.empty(shape, dtype=dtype)
            if len(shape) != 2 or shape[1] != dim or dtype != np.dtype(_DTYPES[encoding]):
                raise ValueError(f"matrix {shape} {dtype} is not {dim} x {encoding}")
            index = cls(model_id, dim, shape[0] + shape[0] // 4, encoding=encoding)
            made.append(index)
            return index._matrix[: shape[0]]

        loaded = load_snapshot(path, cipher, expect, allocate, check_meta)
        if loaded is None:
            return None
        arrays, meta = loaded
        names = {"matrix", "versions", "owners", "scales", "ids", "rows"}
        companions = {k[2:]: v for k, v in arrays.items() if k.startswith("x_")}
        if set(arrays) - {f"x_{k}" for k in companions} != names:
            log.warning(
                "snapshot %s not used: arrays %s, not %s; rebuilding",
                path,
                sorted(arrays),
                sorted(names),
            )
            return None
        index = made[0]
        n = int(arrays["matrix"].shape[0])
        ids, rows = arrays["ids"], arrays["rows"]
        scales_n = n if encoding == "i8" else 0
        if (
            arrays["versions"].shape != (n,)
            or arrays["owners"].shape != (n,)
            or arrays["scales"].shape != (scales_n,)
            or ids.shape != rows.shape
            or (rows.size and (int(rows.min()) < 0 or int(rows.max()) >= n))
        ):
            log.warning("snapshot %s not used: its arrays do not agree; rebuilding", path)
            return None
        index._versions[:n] = arrays["versions"]
        index._owners[:n] = arrays["owners"]
        index._scales[:scales_n] = arrays["scales"]
        for start in range(0, ids.shape[0], 1 << 20):  # bounded temporaries (Python ints)
            end = start + (1 << 20)
            index._rows.update(zip(ids[start:end].tolist(), rows[start:end].tolist(), strict=True))
        if len(index._rows) != ids.shape[0]:
            log.warning("snapshot %s not used: a citizen twice; rebuilding", path)
            return None
        index._size = n
        index.base_seq = int(meta.get("base_seq", 0))
        index.companions = companions
        index.snapshot_meta = dict(meta)
        return index, meta

    # rows, for 1:N search (fvs.store.search) -----------------------------------------
    # Rows are append-only: a new version or a new citizen takes a new row, an erasure only
    # forgets the citizen's row. A search index can therefore follow this one by reading the
    # rows it has not seen yet, and tell live rows from dead ones by asking ``live``.
    @property
    def rows_used(self) -> int:
        """Rows written so far (live and dead)."""
        return self._size

    @property
    def dead_rows(self) -> int:
        return self._size - len(self._rows)

    def vectors(self, start: int, end: int) -> Vector:
        """Rows [start, end) as float32 unit vectors (live or dead)."""
        block = self._matrix[start:end].astype(np.float32)
        if self.encoding == "i8":
            block *= self._scales[start:end, None]
        return block

    def gather(self, rows: npt.NDArray[np.int64]) -> Vector:
        """Rows ``rows`` as float32 unit vectors."""
        block = self._matrix[rows].astype(np.float32)
        if self.encoding == "i8":
            block *= self._scales[rows, None]
        return block

    def owners(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The citizen (as a number) each row was written for."""
        return self._owners[rows]

    def live(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Whether each row is its citizen's active template now."""
        owners = self._owners[rows]
        return np.array(
            [self._rows.get(int(o), -1) == int(r) for o, r in zip(owners, rows, strict=True)],
            dtype=bool,
        )

    def versions_of(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        return self._versions[rows]

    def row_of(self, citizen_id: str) -> int | None:
        return self._rows.get(int(citizen_id))
