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
from fvs.pipeline import quality
from fvs.pipeline.pipeline import FacePipeline

log = logging.getLogger(__name__)

UNREADABLE = "UNREADABLE"


QUALITY_FIELDS = (
    "inter_eye_px",
    "sharpness",
    "exposure",
    "contrast",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "detection_score",
    "overall",
)

Entry = tuple[npt.NDArray[np.float32] | None, str, npt.NDArray[np.float64]]


@dataclass
class Embedded:
    vectors: npt.NDArray[np.float32]  # (N, D); zeros where the image failed
    failure: list[str]  # "" or the reason (NO_FACE, LOW_QUALITY, ...), per image
    quality: npt.NDArray[np.float64]  # (N, len(QUALITY_FIELDS)); NaN where no face was found
    problems: list[str] = field(default_factory=list)  # unreadable files, with the error

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        return np.array([not f for f in self.failure], dtype=bool)

    def component(self, name: str) -> npt.NDArray[np.float64]:
        return self.quality[:, QUALITY_FIELDS.index(name)]


def cache_name(pipeline: FacePipeline) -> str:
    """Cache file for this model and every setting that changes an embedding or a refusal."""
    settings = {
        "pipeline": pipeline.settings.model_dump(),
        "verify_minimums": pipeline.minimums["verify"].__dict__,
        "detector": pipeline.info.detector_sha256,
        "format": 2,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return f"{pipeline.info.model_id.replace('@', '-')}-{digest}.npz"


def _load_cache(path: Path | None) -> dict[str, Entry]:
    if path is None or not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        keys, vectors, reasons, quality = (
            data["keys"],
            data["vectors"],
            data["reasons"],
            data["quality"],
        )
    return {
        str(k): (None if str(r) else v.astype(np.float32), str(r), q)
        for k, v, r, q in zip(keys, vectors, reasons, quality, strict=True)
    }


def _save_cache(path: Path, cache: dict[str, Entry], dim: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = list(cache.values())
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        keys=np.array(list(cache), dtype=str),
        vectors=np.stack([v if v is not None else np.zeros(dim, np.float32) for v, _, _ in entries])
        if entries
        else np.zeros((0, dim)),
        reasons=np.array([r for _, r, _ in entries], dtype=str),
        quality=np.stack([q for _, _, q in entries])
        if entries
        else np.zeros((0, len(QUALITY_FIELDS))),
    )
    tmp.replace(path)


def _extract(pipeline: FacePipeline, data: bytes) -> Entry:
    """As Verify: the verify quality minimums apply; the quality is kept either way."""
    no_quality = np.full(len(QUALITY_FIELDS), np.nan)
    try:
        probe = pipeline.extract(data, "measure")
    except FvsError as exc:
        return None, exc.code.value, no_quality
    assert probe.quality is not None
    measured = np.array([getattr(probe.quality, f) for f in QUALITY_FIELDS], dtype=np.float64)
    try:
        quality.check(probe.quality, pipeline.minimums["verify"])
    except FvsError as exc:
        return None, exc.code.value, measured
    return probe.embedding, "", measured


def embed_dataset(
    pipeline: FacePipeline, dataset: Dataset, cache_dir: Path | None, progress: bool = True
) -> Embedded:
    """Run decode, detect, quality, align and embed on every image, as Verify would."""
    dim = pipeline.manifest.recognizer.embedding_size
    cache_path = cache_dir / cache_name(pipeline) if cache_dir else None
    cache = _load_cache(cache_path)
    hits = 0
    vectors = np.zeros((len(dataset.images), dim), dtype=np.float32)
    qualities = np.full((len(dataset.images), len(QUALITY_FIELDS)), np.nan)
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
        else:
            cache[key] = _extract(pipeline, data)
        vector, reason, qualities[i] = cache[key]
        if reason:
            failure[i] = reason
        else:
            assert vector is not None
            vectors[i] = vector
    if cache_path is not None:
        _save_cache(cache_path, cache, dim)
    log.info("embedded %d images (%d from cache %s)", len(dataset.images), hits, cache_path)
    return Embedded(vectors, failure, qualities, problems)


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
