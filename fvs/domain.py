"""Frozen, transport-neutral values that cross layer boundaries."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Embedding = npt.NDArray[np.float32]
"""(D,) float32, L2-normalised."""


@dataclass(frozen=True)
class Face:
    """A detected face in image pixel coordinates (after EXIF orientation)."""

    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    landmarks: tuple[tuple[float, float], ...]  # 5 points: eyes, nose, mouth corners
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def side(self) -> float:
        """Geometric mean of the box sides: the face's linear size."""
        return float(np.sqrt(max(self.width, 0.0) * max(self.height, 0.0)))


@dataclass
class Timings:
    """Milliseconds spent per stage of one request."""

    decode_ms: float = 0.0
    detect_ms: float = 0.0
    align_ms: float = 0.0
    quality_ms: float = 0.0
    embed_ms: float = 0.0
    match_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class Quality:
    """Measured quality components of one face, and an overall score."""

    inter_eye_px: float  # distance between the eye centres in the (upright) photo
    sharpness: float  # variance of the Laplacian of the aligned 112x112 grey crop
    exposure: float  # mean grey level of the aligned face centre, 0-255
    contrast: float  # standard deviation of grey levels of the aligned face centre
    yaw_deg: float  # left-right head turn estimated from the landmarks
    pitch_deg: float  # up-down head tilt estimated from the landmarks
    roll_deg: float  # in-plane rotation of the eye line
    detection_score: float
    overall: float  # 0-100: the weakest component relative to its ideal


@dataclass(frozen=True)
class Probe:
    """What the pipeline extracts from one photo."""

    face: Face
    embedding: Embedding
    timings: Timings
    quality: Quality | None = None


@dataclass(frozen=True)
class Consent:
    reference: str
    given_at: dt.datetime | None


@dataclass(frozen=True)
class VerifyRequest:
    citizen_id: str
    image: bytes
    purpose: str = ""
    consent: Consent | None = None
    request_id: str = ""


@dataclass(frozen=True)
class VerifyResult:
    match_score: float
    similarity: float
    model: str
    face: Face
    request_id: str
    template_version: int
    score_mapping: str
    timings: Timings
    false_match_rate: float | None = None  # estimated at this score; None if uncalibrated
    quality: Quality | None = None


@dataclass(frozen=True)
class EnrollRequest:
    citizen_id: str
    image: bytes
    create_if_missing: bool = False


@dataclass(frozen=True)
class EnrollResult:
    citizen_id: str
    template_version: int
    model: str
    face: Face
    citizen_created: bool
    enrolled_at: dt.datetime
    quality: Quality | None = None
    # flag mode (issue 9): other citizens this face matches, and the case opened for them
    duplicates: list[DuplicateMatch] = field(default_factory=list)
    duplicate_case: int = 0


@dataclass(frozen=True)
class DuplicateMatch:
    """An enrolled citizen a 1:N search found (fvs.dedup)."""

    citizen_id: str
    similarity: float
    score: float
    template_version: int
    duplicate: bool


class Sex(enum.Enum):
    MALE = "M"
    FEMALE = "F"


class CardStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


@dataclass(frozen=True)
class Citizen:
    """A civil-registration record. Holds no biometric data."""

    citizen_id: str
    first_name_th: str
    last_name_th: str
    first_name_en: str
    last_name_en: str
    sex: Sex
    birth_date: dt.date
    province: str
    district: str
    card_status: CardStatus = CardStatus.ACTIVE
    synthetic: bool = True


@dataclass(frozen=True)
class Template:
    """An enrolled face template."""

    citizen_id: str
    model_id: str
    vector: Embedding = field(repr=False)
    version: int
    enrolled_at: dt.datetime


@dataclass(frozen=True)
class CitizenView:
    """A citizen record with its enrolment status (what GetCitizen returns)."""

    citizen: Citizen
    template_version: int  # 0 when not enrolled
    template_model: str
