"""Shared fixtures: the committed photos and the real model pipeline."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline

DATA = Path(__file__).parent / "data"

# Valid IDs (check digit correct) used across tests.
CITIZEN_A = "3100600445635"
CITIZEN_B = "1234545678781"
UNKNOWN_CITIZEN = "1101700203450"
WRONG_CHECK_DIGIT = "3100600445636"


def photo(name: str) -> bytes:
    return (DATA / name).read_bytes()


def bgr(name: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(photo(name), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def pil_bytes(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="session")
def settings_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    def make(**pipeline: object) -> Settings:
        settings = Settings()
        settings.store.data_dir = tmp_path_factory.mktemp("data")
        settings.model.providers = "cpu"
        settings.model.warmup_runs = 1
        for key, value in pipeline.items():
            setattr(settings.pipeline, key, value)
        return settings

    return make


@pytest.fixture(scope="session")
def pipeline(settings_factory: Callable[..., Settings]) -> FacePipeline:
    settings = settings_factory()
    return FacePipeline.load(settings.model, settings.pipeline)
