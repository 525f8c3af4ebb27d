"""5-point similarity alignment to the ArcFace template (as insightface's norm_crop)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from insightface.utils.face_align import arcface_dst
from skimage.transform import SimilarityTransform

from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.decode import BgrImage

ARCFACE_SIZE = 112


def alignment_matrix(landmarks: npt.NDArray[np.float32], size: int = ARCFACE_SIZE) -> np.ndarray:
    """(2, 3) affine matrix taking the 5 landmarks onto the ArcFace template at ``size``.

    Same least-squares similarity (Umeyama) as insightface's ``estimate_norm``, through
    scikit-image's ``from_estimate`` (``estimate`` is deprecated there).
    """
    if size % 112 == 0:
        ratio, shift_x = size / 112.0, 0.0
    elif size % 128 == 0:
        ratio, shift_x = size / 128.0, 8.0 * size / 128.0
    else:
        raise ValueError(f"alignment size {size} must be a multiple of 112 or 128")
    dst = arcface_dst * ratio
    dst[:, 0] += shift_x
    transform = SimilarityTransform.from_estimate(landmarks, dst)
    if not transform:
        raise FvsError(ErrorCode.NO_FACE, "the face landmarks are degenerate")
    return np.asarray(transform.params[0:2, :])


def align(
    image: BgrImage, landmarks: npt.NDArray[np.float32], size: int = ARCFACE_SIZE
) -> BgrImage:
    """(size, size, 3) uint8 BGR crop of the face, aligned to the ArcFace template."""
    matrix = alignment_matrix(landmarks, size)
    return np.asarray(cv2.warpAffine(image, matrix, (size, size), borderValue=0.0), dtype=np.uint8)
