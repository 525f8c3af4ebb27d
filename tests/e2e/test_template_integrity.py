"""A template row moved onto another citizen, through a real server: that citizen gets
DATA_LOSS / TEMPLATE_INTEGRITY, every other citizen is served, and the server starts. A
server that starts from its index snapshot never compares the moved row either: a row edited
behind the change log's back is not read until the next full load, and until then the
citizen is compared with the template the snapshot holds (its own)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable

import pytest

from fvs.api.client import CallFailedError
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import CITIZEN_A, CITIZEN_B, photo
from tests.e2e.conftest import DevClient, ServerThread


def moved(settings: Settings, pipeline: FacePipeline, at_once: bool = False) -> None:
    """A and B enrolled through a server, which stops; then an insider with write access to
    the database copies A's sealed template onto B. ``at_once``: the snapshot taken at the
    stop stands at the last change, as it does 30 s after it."""
    server = ServerThread(settings, lambda: pipeline)
    if at_once:
        assert server.parts.service.snapshots is not None
        server.parts.service.snapshots.margin = dt.timedelta(0)
    server.loaded.result(timeout=60)
    with DevClient(server.address) as c:
        c.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        c.enroll(CITIZEN_B, photo("biden.jpg"), create_if_missing=True)
    server.stop()
    db = sqlite3.connect(settings.store.data_dir / "registry.sqlite3")
    (blob,) = db.execute(
        "SELECT vector FROM face_templates WHERE citizen_id = ?", (CITIZEN_A,)
    ).fetchone()
    db.execute("UPDATE face_templates SET vector = ? WHERE citizen_id = ?", (blob, CITIZEN_B))
    db.commit()
    db.close()


@pytest.mark.model
def test_moved_template_is_refused_for_that_citizen_only(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    settings = settings_factory()
    settings.store.index_snapshot = False  # every row read and opened at start
    moved(settings, pipeline)
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


@pytest.mark.model
def test_from_the_snapshot_the_moved_row_is_not_compared_until_a_full_load(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    settings = settings_factory()
    moved(settings, pipeline, at_once=True)
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        assert server.parts.service.snapshots is not None
        assert server.parts.service.snapshots.source == "snapshot"
        with DevClient(server.address) as c:
            # A's face never passes as B: B is compared with B's own template from the
            # snapshot, or, when the snapshot stands before B's enrolment (the index sync had
            # not yet polled it), B's row is read again at start and refused
            try:
                similarity = c.verify(CITIZEN_B, photo("obama2.jpg")).similarity
            except CallFailedError as exc:
                assert (exc.code, exc.reason) == ("DATA_LOSS", "TEMPLATE_INTEGRITY")
            else:
                assert similarity < 0.2
                assert c.verify(CITIZEN_B, photo("biden2.jpg")).similarity > 0.3
    finally:
        server.stop()
    for snapshot in (settings.store.data_dir / "cache").glob("*.snap"):
        snapshot.unlink()  # the next full load finds the moved row
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        assert server.service.index is not None
        assert server.service.index.failed == [CITIZEN_B]
        with DevClient(server.address) as c, pytest.raises(CallFailedError) as info:
            c.verify(CITIZEN_B, photo("obama2.jpg"))
        assert (info.value.code, info.value.reason) == ("DATA_LOSS", "TEMPLATE_INTEGRITY")
    finally:
        server.stop()
