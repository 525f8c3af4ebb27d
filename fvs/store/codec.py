"""How a template's vector is laid out in a row, before encryption.

``f32``: D little-endian float32 (4 D bytes); ``f16``: D float16 (2 D bytes); ``i8``: a float32
scale then D int8, v ~= scale * q (D + 4 bytes). Decoded vectors are float32, re-normalised to
unit length so a cosine stays a dot product. README "Storage backends" gives the measured
cosine error of each and why the default is what it is.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from fvs.errors import ErrorCode, FvsError

Encoding = Literal["f32", "f16", "i8"]
ENCODINGS: tuple[Encoding, ...] = ("f32", "f16", "i8")
Vector = npt.NDArray[np.float32]


def encode(vector: npt.NDArray[np.floating], encoding: str) -> bytes:
    v = np.asarray(vector, dtype=np.float32)
    if encoding == "f32":
        return v.astype("<f4").tobytes()
    if encoding == "f16":
        return v.astype("<f2").tobytes()
    if encoding == "i8":
        peak = float(np.max(np.abs(v))) if v.size else 0.0
        scale = peak / 127.0 if peak > 0 else 1.0
        q: npt.NDArray[np.int8] = np.clip(np.rint(v / scale), -127, 127).astype(np.int8)
        return np.array([scale], dtype="<f4").tobytes() + q.tobytes()
    raise ValueError(f"unknown template encoding {encoding!r}")


def encode_many(vectors: npt.NDArray[np.floating], encoding: str) -> list[bytes]:
    """``encode`` of each row of (N, D) ``vectors``, vectorised (bulk loads)."""
    m = np.asarray(vectors, dtype=np.float32)
    if encoding == "i8":
        peak = np.max(np.abs(m), axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype("<f4")
        q = np.clip(np.rint(m / scale[:, None]), -127, 127).astype(np.int8)
        rows = np.concatenate([scale[:, None].view(np.uint8), q.view(np.uint8)], axis=1)
    elif encoding in ("f16", "f32"):
        rows = m.astype("<f2" if encoding == "f16" else "<f4").view(np.uint8)
    else:
        raise ValueError(f"unknown template encoding {encoding!r}")
    return [r.tobytes() for r in rows]


def _unit(v: Vector) -> Vector:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def decode(payload: bytes, encoding: str, dim: int) -> Vector:
    if encoding == "f32" and len(payload) == 4 * dim:
        return np.frombuffer(payload, dtype="<f4").astype(np.float32)
    if encoding == "f16" and len(payload) == 2 * dim:
        return _unit(np.frombuffer(payload, dtype="<f2").astype(np.float32))
    if encoding == "i8" and len(payload) == dim + 4:
        scale = np.frombuffer(payload[:4], dtype="<f4")[0]
        return _unit(np.frombuffer(payload[4:], dtype=np.int8).astype(np.float32) * scale)
    raise FvsError(
        ErrorCode.TEMPLATE_INTEGRITY,
        f"stored template is corrupt ({len(payload)} bytes for {dim} dimensions in {encoding!r})",
    )


def decode_many(payloads: list[bytes], encoding: str, dim: int) -> Vector:
    """(N, dim) float32 unit rows of N payloads of one encoding (all of the right size)."""
    joined = b"".join(payloads)
    n = len(payloads)
    if encoding == "f32":
        return np.frombuffer(joined, dtype="<f4").reshape(n, dim).astype(np.float32)
    if encoding == "f16":
        m = np.frombuffer(joined, dtype="<f2").reshape(n, dim).astype(np.float32)
    else:
        raw = np.frombuffer(joined, dtype=np.uint8).reshape(n, dim + 4)
        scale = raw[:, :4].copy().view("<f4").astype(np.float32)
        m = raw[:, 4:].view(np.int8).astype(np.float32) * scale
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return m
