"""Shared fixtures: the committed photos and the real model pipeline."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
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


def _pg_base_url() -> str:
    """The server scripts/ensure_postgres.sh found or started (scripts/test.sh exports it as
    FVS_TEST_PG_URL); run here too when pytest is started by hand."""
    import os
    import subprocess

    url = os.environ.get("FVS_TEST_PG_URL")
    if url:
        return url
    script = Path(__file__).resolve().parent.parent / "scripts" / "ensure_postgres.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"no PostgreSQL server for the tests: {done.stderr.strip()}")
    url = done.stdout.strip()
    os.environ["FVS_TEST_PG_URL"] = url
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards. Never skipped: a
    missing server fails the test."""
    import uuid

    import psycopg

    base = _pg_base_url()
    name = f"fvs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = base.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate_all(store: object) -> None:
    """Run every component's migrations (registry, access, and audit when it provides them)
    on the databases ``store`` (a StoreSettings) names, as `fvs db migrate` does."""
    from fvs.config import StoreSettings
    from fvs.store.factory import open_database
    from fvs.store.migrate import components, migrate

    assert isinstance(store, StoreSettings)
    location = store.location()
    for name, migrations in components().items():
        if location.backend not in migrations:
            continue
        db = open_database(location, name, pool_size=2)
        try:
            migrate(db, name, migrations)
        finally:
            db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The conformance hook: StoreSettings for each backend (a fresh SQLite data directory, or
    a fresh migrated PostgreSQL database with a template key file in the data directory).
    Every store's conformance suite (registry, access, audit) takes this fixture, so each
    runs against both backends."""
    from fvs.config import StoreSettings
    from fvs.store.crypto import write_new_key

    settings = StoreSettings(data_dir=tmp_path / "data")
    if request.param == "sqlite":
        yield settings
        return
    url = request.getfixturevalue("pg_url")
    settings.url = url
    write_new_key(settings.key_file())
    migrate_all(settings)
    yield settings
