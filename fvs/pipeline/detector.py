"""Face detection (SCRFD, via insightface.model_zoo) and the choice of the one subject."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from insightface.model_zoo.scrfd import SCRFD

from fvs.domain import Face
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.decode import BgrImage
from fvs.runtime.manifest import DetectorSpec


class FaceDetector:
    """SCRFD over an injected session, at one or more square input sizes.

    At each size the image is letterboxed (aspect kept, padded bottom/right) as insightface
    does; detections from all sizes are merged by non-maximum suppression.
    """

    def __init__(
        self, session: Any, spec: DetectorSpec, sizes: Sequence[int], threshold: float
    ) -> None:
        # model_file=None + static_shape_sessions=False: SCRFD runs every size on our session
        # instead of creating sessions of its own.
        self._scrfd = SCRFD(model_file=None, session=session, static_shape_sessions=False)
        if not self._scrfd.use_kps:
            raise ValueError("the detector model has no keypoint outputs; FVS needs 5 landmarks")
        self._scrfd.input_mean = spec.input_mean
        self._scrfd.input_std = spec.input_std
        self.sizes = [(int(s), int(s)) for s in sizes]
        self.threshold = threshold

    def detect(self, image: BgrImage) -> list[Face]:
        """All faces in ``image`` ((H, W, 3) uint8 BGR), largest first."""
        boxes, landmarks = self._scrfd.detect(
            image, input_size=self.sizes, det_thresh=self.threshold
        )
        faces = [
            Face(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                landmarks=tuple((float(x), float(y)) for x, y in kps),
                score=float(b[4]),
            )
            for b, kps in zip(boxes, landmarks, strict=True)
        ]
        faces.sort(key=lambda f: f.side, reverse=True)
        return faces


def select_subject(faces: Sequence[Face], multiple_faces_ratio: float, min_face_px: int) -> Face:
    """The single subject of a verification photo, or the reason there is none.

    Rejects rather than guesses when a second face is nearly as large as the largest one
    (its side >= ``multiple_faces_ratio`` x the largest side).
    """
    if not faces:
        raise FvsError(ErrorCode.NO_FACE, "no face was found in the image")
    ordered = sorted(faces, key=lambda f: f.side, reverse=True)
    subject = ordered[0]
    if len(ordered) > 1 and ordered[1].side >= multiple_faces_ratio * subject.side:
        raise FvsError(
            ErrorCode.MULTIPLE_FACES,
            f"{len(ordered)} faces found and the second is "
            f"{ordered[1].side / subject.side:.0%} the size of the first; send a photo of one "
            "person",
            faces=str(len(ordered)),
        )
    short_side = min(subject.width, subject.height)
    if short_side < min_face_px:
        raise FvsError(
            ErrorCode.FACE_TOO_SMALL,
            f"the face is {short_side:.0f} px; at least {min_face_px} px is needed",
            face_px=f"{short_side:.0f}",
            min_px=str(min_face_px),
        )
    return subject


def landmarks_array(face: Face) -> np.ndarray:
    """(5, 2) float32 landmarks of ``face``."""
    return np.asarray(face.landmarks, dtype=np.float32)
