"""Face detection (SCRFD, via insightface.model_zoo) and the choice of the one subject."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from insightface.model_zoo.scrfd import SCRFD

from fvs.domain import Face
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.decode import BgrImage
from fvs.runtime.manifest import DetectorSpec

STRIDE = 32  # SCRFD's largest feature stride: input sides must be multiples of it


class FaceDetector:
    """SCRFD over an injected session, at one or more square input sizes.

    At each size the image is letterboxed (aspect kept, padded bottom/right) as insightface
    does; detections from all sizes are merged by non-maximum suppression.
    """

    def __init__(
        self,
        session: Any,
        spec: DetectorSpec,
        threshold: float,
        sizes: Sequence[int] = (),
        max_size: int = 640,
        coarse_size: int = 160,
        narrow_session: Any = None,
        pick: Callable[[], Any] | None = None,
    ) -> None:
        """``narrow_session`` (optional): the same network on one thread, used when ``pick()``
        (fvs.runtime.sessions.Session.current) chooses it for a run starting now."""
        self._scrfd = self._wrap(session, spec)
        self._narrow_session = narrow_session
        self._narrow = self._wrap(narrow_session, spec) if narrow_session is not None else None
        self._pick = pick
        self.fixed_sizes = [(int(s), int(s)) for s in sizes]
        self.max_size = max_size
        self.coarse_size = coarse_size
        self.threshold = threshold

    @staticmethod
    def _wrap(session: Any, spec: DetectorSpec) -> SCRFD:
        # model_file=None + static_shape_sessions=False: SCRFD runs every size on our session
        # instead of creating sessions of its own.
        scrfd = SCRFD(model_file=None, session=session, static_shape_sessions=False)
        if not scrfd.use_kps:
            raise ValueError("the detector model has no keypoint outputs; FVS needs 5 landmarks")
        scrfd.input_mean = spec.input_mean
        scrfd.input_std = spec.input_std
        return scrfd

    def sizes_for(self, width: int, height: int) -> list[tuple[int, int]]:
        """Detector input sizes for a (width x height) image."""
        if self.fixed_sizes:
            return self.fixed_sizes
        primary = min(self.max_size, max(64, -(-max(width, height) // STRIDE) * STRIDE))
        sizes = [(primary, primary)]
        if primary > 2 * self.coarse_size:
            sizes.append((self.coarse_size, self.coarse_size))
        return sizes

    def detect(self, image: BgrImage) -> list[Face]:
        """All faces in ``image`` ((H, W, 3) uint8 BGR), largest first."""
        height, width = image.shape[:2]
        scrfd = self._scrfd
        if (
            self._narrow is not None
            and self._pick is not None
            and self._pick() is self._narrow_session
        ):
            scrfd = self._narrow
        boxes, landmarks = scrfd.detect(
            image, input_size=self.sizes_for(width, height), det_thresh=self.threshold
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


def prominence(face: Face, width: int, height: int) -> float:
    """How much ``face`` looks like the subject of a (width x height) photo.

    Its side (geometric mean of the box sides) discounted linearly by the distance of its centre
    from the image centre: a face at the centre keeps its size, one in a corner counts nothing.
    """
    half_diagonal = 0.5 * float(np.hypot(width, height))
    cx = 0.5 * (face.box[0] + face.box[2]) - 0.5 * width
    cy = 0.5 * (face.box[1] + face.box[3]) - 0.5 * height
    return face.side * max(0.0, 1.0 - float(np.hypot(cx, cy)) / half_diagonal)


def _centre_inside(face: Face, box: tuple[float, float, float, float]) -> bool:
    cx = 0.5 * (face.box[0] + face.box[2])
    cy = 0.5 * (face.box[1] + face.box[3])
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def select_subject(
    faces: Sequence[Face],
    width: int,
    height: int,
    multiple_faces_ratio: float,
    min_face_px: int,
) -> Face:
    """The single subject of a (width x height) verification photo, or the reason there is none.

    The subject is the most prominent face (large and central, see ``prominence``). A second
    face whose centre lies inside the subject's box is a duplicate detection of it and ignored.
    When another face is nearly as prominent (>= ``multiple_faces_ratio`` x the subject's) the
    photo is refused with MULTIPLE_FACES rather than guessed; smaller or off-centre bystanders
    (a crowd behind the subject, a face cut by the frame edge) are not.
    """
    if not faces:
        raise FvsError(ErrorCode.NO_FACE, "no face was found in the image")
    ranked = sorted(faces, key=lambda f: prominence(f, width, height), reverse=True)
    subject = ranked[0]
    best = prominence(subject, width, height)
    others = [f for f in ranked[1:] if not _centre_inside(f, subject.box)]
    if others and prominence(others[0], width, height) >= multiple_faces_ratio * best:
        raise FvsError(
            ErrorCode.MULTIPLE_FACES,
            f"{len(others) + 1} faces found and none stands out as the subject; send a photo "
            "of one person",
            faces=str(len(others) + 1),
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
