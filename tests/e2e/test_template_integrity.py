"""A template row moved onto another citizen, through a real server: that citizen gets
DATA_LOSS / TEMPLATE_INTEGRITY, every other citizen is served, and the server starts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from fvs.api.client import CallFailedError
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import CITIZEN_A, CITIZEN_B, photo
from tests.e2e.conftest import DevClient, ServerThread


@pytest.mark.model
def test_moved_template_is_refused_for_that_citizen_only(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    settings = settings_factory()
    server = ServerThread(settings, lambda: pipeline)
    server.loaded.result(timeout=60)
    with DevClient(server.address) as c:
        c.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        c.enroll(CITIZEN_B, photo("biden.jpg"), create_if_missing=True)
    server.stop()
    # an insider with write access to the database copies A's sealed template onto B
    db = sqlite3.connect(settings.store.data_dir / "registry.sqlite3")
    (blob,) = db.execute(
        "SELECT vector FROM face_templates WHERE citizen_id = ?", (CITIZEN_A,)
    ).fetchone()
    db.execute("UPDATE face_templates SET vector = ? WHERE citizen_id = ?", (blob, CITIZEN_B))
    db.commit()
    db.close()
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        assert server.service.index is not None
        assert server.service.index.failed == [CITIZEN_B]
        with DevClient(server.address) as c:
            assert c.verify(CITIZEN_A, photo("obama2.jpg")).similarity > 0.5
            with pytest.raises(CallFailedError) as info:
                c.verify(CITIZEN_B, photo("obama2.jpg"))
            assert (info.value.code, info.value.reason) == ("DATA_LOSS", "TEMPLATE_INTEGRITY")
            # re-enrolling the citizen repairs it
            c.enroll(CITIZEN_B, photo("biden.jpg"))
            assert c.verify(CITIZEN_B, photo("biden2.jpg")).similarity > 0.3
    finally:
        server.stop()
