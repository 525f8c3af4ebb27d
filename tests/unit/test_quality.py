"""Quality components on crafted images and landmarks."""

import math

import cv2
import numpy as np
import pytest

from fvs.config import QualitySettings
from fvs.domain import Face
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.quality import QualityMinimums, check, measure, pose

FRONTAL = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]])
# The shipped defaults: verification minimums, and the stricter enrolment ones.
LENIENT = QualityMinimums(**QualitySettings().verify.model_dump())
STRICT = QualityMinimums(**QualitySettings().enroll.model_dump())


def face(landmarks: np.ndarray = FRONTAL, score: float = 0.85) -> Face:
    return Face((20, 30, 90, 110), tuple((float(x), float(y)) for x, y in landmarks), score)


def textured(seed: int = 0) -> np.ndarray:
    """A (112, 112, 3) crop with fine detail, mid exposure and fair contrast."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, size=(112, 112), dtype=np.uint8)
    return cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)


def refusal(quality, minimums=STRICT) -> tuple[ErrorCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(FvsError) as info:
        check(quality, minimums)
    return info.value.code, info.value.metadata["component"]


def test_frontal_pose_is_near_zero() -> None:
    yaw, pitch, roll = pose(FRONTAL)
    assert abs(yaw) < 3 and abs(pitch) < 10 and abs(roll) < 1


def test_rolled_face_reports_roll() -> None:
    angle = math.radians(30)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    yaw, _, roll = pose(FRONTAL @ rot.T)
    assert roll == pytest.approx(30, abs=0.5)
    assert abs(yaw) < 3


def test_profile_is_refused_for_enrolment_only() -> None:
    profile = FRONTAL.copy()
    profile[2, 0] = 80.0  # nose tip beyond the right eye: a face turned sideways
    quality = measure(face(profile), textured())
    assert abs(quality.yaw_deg) == pytest.approx(90)
    assert refusal(quality) == (ErrorCode.LOW_QUALITY, "pose")
    check(quality, LENIENT)  # verification still accepts it


def test_blurred_face_is_refused() -> None:
    sharp = measure(face(), textured())
    blurred = measure(face(), cv2.GaussianBlur(textured(), (0, 0), 4))
    assert blurred.sharpness < 0.05 * sharp.sharpness
    assert refusal(blurred) == (ErrorCode.LOW_QUALITY, "sharpness")
    check(sharp, STRICT)


def test_dark_face_is_refused() -> None:
    dark = measure(face(), (textured() * 0.12).astype(np.uint8))
    assert dark.exposure < 25
    assert refusal(dark, LENIENT)[1] in {"exposure", "sharpness"}
    assert refusal(dark)[1] in {"exposure", "sharpness"}


def test_flat_face_lacks_contrast() -> None:
    flat = np.full((112, 112, 3), 128, np.uint8)
    flat[::2, ::2] = 140  # sharp but nearly uniform
    quality = measure(face(), flat)
    assert quality.contrast < 15
    assert refusal(quality) == (ErrorCode.LOW_QUALITY, "contrast")


def test_tiny_face_is_too_small() -> None:
    tiny = FRONTAL * 0.2  # eyes 7 px apart
    quality = measure(face(tiny), textured())
    assert quality.inter_eye_px == pytest.approx(7.04, abs=0.1)
    assert refusal(quality, LENIENT) == (ErrorCode.FACE_TOO_SMALL, "face_size")


def test_weak_detection_is_refused_for_enrolment() -> None:
    quality = measure(face(score=0.55), textured())
    assert refusal(quality) == (ErrorCode.LOW_QUALITY, "detection_score")
    check(quality, LENIENT)


def test_overall_is_the_weakest_component() -> None:
    good = measure(face(FRONTAL * 2), textured())
    weak = measure(face(FRONTAL * 2, score=0.3), textured())
    assert weak.overall == pytest.approx(30, abs=0.5)
    assert weak.overall < good.overall <= 100
