"""Embedding a dataset with the server's own pipeline, cached by file hash and model."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from fvs.errors import FvsError
from fvs.evaluation.dataset import Dataset
from fvs.pipeline.pipeline import FacePipeline

log = logging.getLogger(__name__)

UNREADABLE = "UNREADABLE"


@dataclass
class Embedded:
    vectors: npt.NDArray[np.float32]  # (N, D); zeros where the image failed
    failure: list[str]  # "" or the reason (NO_FACE, LOW_QUALITY, ...), per image
    problems: list[str] = field(default_factory=list)  # unreadable files, with the error

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        return np.array([not f for f in self.failure], dtype=bool)


def cache_name(pipeline: FacePipeline) -> str:
    """Cache file for this model and every setting that changes an embedding or a refusal."""
    settings = {
        "pipeline": pipeline.settings.model_dump(),
        "verify_minimums": pipeline.minimums["verify"].__dict__,
        "detector": pipeline.info.detector_sha256,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{pipeline.info.model_id.replace('@', '-')}-{digest}.npz"


def _load_cache(path: Path | None) -> dict[str, tuple[npt.NDArray[np.float32] | None, str]]:
    if path is None or not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        keys, vectors, reasons = data["keys"], data["vectors"], data["reasons"]
    return {
        str(k): (None if str(r) else v.astype(np.float32), str(r))
        for k, v, r in zip(keys, vectors, reasons, strict=True)
    }


def _save_cache(
    path: Path, cache: dict[str, tuple[npt.NDArray[np.float32] | None, str]], dim: int
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(cache)
    vectors = (
        np.stack([v if v is not None else np.zeros(dim, np.float32) for v, _ in cache.values()])
        if keys
        else np.zeros((0, dim), np.float32)
    )
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp, keys=np.array(keys), vectors=vectors, reasons=np.array([r for _, r in cache.values()])
    )
    tmp.replace(path)


def embed_dataset(
    pipeline: FacePipeline, dataset: Dataset, cache_dir: Path | None, progress: bool = True
) -> Embedded:
    """Run decode, detect, quality, align and embed on every image, as Verify would."""
    dim = pipeline.manifest.recognizer.embedding_size
    cache_path = cache_dir / cache_name(pipeline) if cache_dir else None
    cache = _load_cache(cache_path)
    hits = 0
    vectors = np.zeros((len(dataset.images), dim), dtype=np.float32)
    failure = [""] * len(dataset.images)
    problems: list[str] = []
    for i, rel in enumerate(
        tqdm(dataset.images, desc="embedding", unit="img", disable=not progress, mininterval=1.0)
    ):
        try:
            data = (dataset.root / rel).read_bytes()
        except OSError as exc:
            failure[i] = UNREADABLE
            problems.append(f"{rel}: unreadable: {exc.strerror}")
            continue
        key = hashlib.sha256(data).hexdigest()
        if key in cache:
            hits += 1
            vector, reason = cache[key]
        else:
            try:
                vector, reason = pipeline.extract(data, "verify").embedding, ""
            except FvsError as exc:
                vector, reason = None, exc.code.value
            cache[key] = (vector, reason)
        if reason:
            failure[i] = reason
        else:
            assert vector is not None
            vectors[i] = vector
    if cache_path is not None:
        _save_cache(cache_path, cache, dim)
    log.info("embedded %d images (%d from cache %s)", len(dataset.images), hits, cache_path)
    return Embedded(vectors, failure, problems)


def pair_scores(
    vectors: npt.NDArray[np.float32], i: npt.NDArray[np.intp], j: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """Cosine of each pair (rows are L2-normalised)."""
    if vectors.shape[0] <= 16384:
        return (vectors @ vectors.T)[i, j].astype(np.float64)
    out = np.empty(i.size, dtype=np.float64)
    for start in range(0, i.size, 262144):
        sl = slice(start, start + 262144)
        out[sl] = np.einsum("ij,ij->i", vectors[i[sl]], vectors[j[sl]])
    return out
