"""ArcFace embedding of aligned crops, preprocessed as the manifest states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from fvs.pipeline.decode import BgrImage
from fvs.runtime.manifest import RecognizerSpec


class InferenceSession(Protocol):
    @property
    def input_name(self) -> str: ...

    def run(self, feed: dict[str, np.ndarray], requests: int = 1) -> list[np.ndarray]: ...


class Embedder:
    def __init__(self, session: InferenceSession, spec: RecognizerSpec) -> None:
        self._session = session
        self._input = session.input_name
        self.spec = spec

    def preprocess(self, crops: Sequence[BgrImage]) -> npt.NDArray[np.float32]:
        return self.preprocess_with(self.spec, crops)

    @staticmethod
    def preprocess_with(spec: RecognizerSpec, crops: Sequence[BgrImage]) -> npt.NDArray[np.float32]:
        """(N, 3, S, S) float32 network input of N aligned (S, S, 3) uint8 BGR crops."""
        size = spec.input_size
        mean = spec.input_mean
        blob = cv2.dnn.blobFromImages(
            list(crops),
            1.0 / spec.input_std,
            (size, size),
            (mean, mean, mean),
            swapRB=spec.color == "RGB",
        )
        return np.ascontiguousarray(blob, dtype=np.float32)

    def embed(self, crops: Sequence[BgrImage]) -> npt.NDArray[np.float32]:
        """(N, D) float32 L2-normalised embeddings of N aligned (S, S, 3) uint8 BGR crops.

        With ``flip_fusion`` the mirror images run in the same batch and each face's two
        outputs are added before normalising."""
        count = len(crops)
        batch = list(crops)
        if self.spec.flip_fusion:
            batch += [np.ascontiguousarray(crop[:, ::-1]) for crop in crops]
        out = self._session.run({self._input: self.preprocess(batch)}, requests=count)[0]
        vectors = np.asarray(out, dtype=np.float32).reshape(len(batch), -1)
        if vectors.shape[1] != self.spec.embedding_size:
            raise ValueError(
                f"recogniser produced {vectors.shape[1]}-d embeddings, the manifest says "
                f"{self.spec.embedding_size}"
            )
        if self.spec.flip_fusion:
            vectors = vectors[:count] + vectors[count:]
        return l2_normalise(vectors)


def l2_normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    normalised: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised
