"""Face image quality, in the spirit of ISO/IEC 29794-5: size, sharpness, exposure, contrast,
pose (from the five landmarks) and detection confidence, each measured and checked against
configurable minimums."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fvs.domain import Face, Quality
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.decode import BgrImage


@dataclass(frozen=True)
class QualityMinimums:
    """What a face must reach; `None`-free so every component is always checked."""

    inter_eye_px: float
    sharpness: float
    exposure_min: float
    exposure_max: float
    contrast: float
    max_yaw_deg: float
    max_pitch_deg: float
    detection_score: float


# The ideal each component is scored against for `overall` (100 = at or beyond all of them).
_IDEAL_EYE_PX = 60.0
_IDEAL_SHARPNESS = 300.0
_IDEAL_CONTRAST = 50.0


def pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, roughly, from (5, 2) landmarks: eyes, nose, mouth corners.

    Yaw from where the nose tip falls between the eyes (0 when centred, +-90 at an eye);
    pitch from where it falls between the eye line and the mouth line (frontal faces put it
    about 55 % of the way down); roll from the slope of the eye line.
    """
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks.astype(np.float64)
    eye_vec = right_eye - left_eye
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-6:
        return 90.0, 90.0, 0.0
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    axis = eye_vec / eye_dist  # along the eye line
    normal = np.array([-axis[1], axis[0]])  # down the face
    across = float(np.dot(nose - left_eye, axis)) / eye_dist  # 0.5 when frontal
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * across - 1.0))))
    eyes_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_left + mouth_right) / 2
    face_height = float(np.dot(mouth_mid - eyes_mid, normal))
    if face_height < 1e-6:
        return yaw, 90.0, roll
    down = float(np.dot(nose - eyes_mid, normal)) / face_height
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * (down - 0.55)))))
    return yaw, pitch, roll


def measure(face: Face, crop: BgrImage) -> Quality:
    """Quality of ``face`` given its aligned (112, 112, 3) uint8 BGR ``crop``."""
    landmarks = np.asarray(face.landmarks, dtype=np.float64)
    inter_eye = float(np.hypot(*(landmarks[1] - landmarks[0])))
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    centre = grey[h // 4 : h - h // 8, w // 5 : w - w // 5]  # eyes to chin, inside the cheeks
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    exposure = float(centre.mean())
    contrast = float(centre.std())
    yaw, pitch, roll = pose(landmarks)
    utilities = [
        inter_eye / _IDEAL_EYE_PX,
        sharpness / _IDEAL_SHARPNESS,
        contrast / _IDEAL_CONTRAST,
        1.0 - abs(exposure - 128.0) / 128.0,
        math.cos(math.radians(yaw)),
        math.cos(math.radians(pitch)),
        face.score,
    ]
    overall = 100.0 * max(0.0, min(1.0, *utilities))
    return Quality(inter_eye, sharpness, exposure, contrast, yaw, pitch, roll, face.score, overall)


def check(quality: Quality, minimums: QualityMinimums) -> None:
    """Raise LOW_QUALITY naming the first component below its minimum
    (FACE_TOO_SMALL for the size)."""
    if quality.inter_eye_px < minimums.inter_eye_px:
        raise FvsError(
            ErrorCode.FACE_TOO_SMALL,
            f"the eyes are {quality.inter_eye_px:.0f} px apart; at least "
            f"{minimums.inter_eye_px:.0f} px is needed",
            component="face_size",
            value=f"{quality.inter_eye_px:.1f}",
            minimum=f"{minimums.inter_eye_px:g}",
        )
    failures = [
        (
            "sharpness",
            quality.sharpness < minimums.sharpness,
            quality.sharpness,
            f">= {minimums.sharpness:g}",
            "the face is blurred",
        ),
        (
            "exposure",
            quality.exposure < minimums.exposure_min,
            quality.exposure,
            f">= {minimums.exposure_min:g}",
            "the face is too dark",
        ),
        (
            "exposure",
            quality.exposure > minimums.exposure_max,
            quality.exposure,
            f"<= {minimums.exposure_max:g}",
            "the face is overexposed",
        ),
        (
            "contrast",
            quality.contrast < minimums.contrast,
            quality.contrast,
            f">= {minimums.contrast:g}",
            "the face has too little contrast",
        ),
        (
            "pose",
            abs(quality.yaw_deg) > minimums.max_yaw_deg,
            quality.yaw_deg,
            f"|yaw| <= {minimums.max_yaw_deg:g}",
            "the head is turned too far sideways",
        ),
        (
            "pose",
            abs(quality.pitch_deg) > minimums.max_pitch_deg,
            quality.pitch_deg,
            f"|pitch| <= {minimums.max_pitch_deg:g}",
            "the head is tilted too far up or down",
        ),
        (
            "detection_score",
            quality.detection_score < minimums.detection_score,
            quality.detection_score,
            f">= {minimums.detection_score:g}",
            "the face is not clearly a face",
        ),
    ]
    for component, failed, value, wanted, why in failures:
        if failed:
            raise FvsError(
                ErrorCode.LOW_QUALITY,
                f"{why} ({component} {value:.1f}, needs {wanted})",
                component=component,
                value=f"{value:.2f}",
                minimum=wanted,
            )
