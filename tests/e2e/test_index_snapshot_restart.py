"""A real `fvs serve` restarted from its template index snapshot (README "Storage backends"):
the snapshot taken at the graceful stop is loaded at the next start, and what changed while
the server was down (an enrolment and an erasure, made by another process) is in force."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fvs.api.client import CallFailedError
from fvs.config import StoreSettings
from fvs.pipeline.pipeline import FacePipeline
from fvs.store.factory import open_registry
from fvs.store.synthetic import minimal_citizen
from tests.conftest import CITIZEN_A, CITIZEN_B, photo
from tests.e2e.conftest import DevClient, ServerProcess

CITIZEN_C = "1100000000016"


@pytest.mark.model
def test_restart_from_the_snapshot_answers_for_changes_made_while_down(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data)
    try:
        first.wait_serving()
        with DevClient(first.address) as client:
            client.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
        first.signal(signal.SIGTERM)
        assert first.wait(60) == 0
    finally:
        first.stop()
    assert "template index: 0 templates" in first.logs()  # the first start read the store
    assert list((data / "cache").glob("index-*.snap"))

    # while it is down, another process enrols B and erases A
    store = open_registry(StoreSettings(data_dir=data))
    try:
        embedding = pipeline.extract(photo("biden.jpg"), "enroll").embedding
        store.add_template(
            CITIZEN_B, pipeline.info.model_id, embedding, create=minimal_citizen(CITIZEN_B)
        )
        store.delete_templates(CITIZEN_A)
    finally:
        store.close()

    second = ServerProcess(data)
    try:
        second.wait_serving()
        with DevClient(second.address) as client:
            result = client.verify(CITIZEN_B, photo("biden2.jpg"))
            with pytest.raises(CallFailedError) as erased:
                client.verify(CITIZEN_A, photo("obama2.jpg"))
            # the duplicate search index came back with the snapshot and follows the replay:
            # B (enrolled while down) is caught, A (erased while down) is not a candidate
            with pytest.raises(CallFailedError) as duplicate:
                client.enroll(CITIZEN_C, photo("biden2.jpg"), create_if_missing=True)
            assert client.enroll(CITIZEN_C, photo("obama2.jpg"), create_if_missing=True)
        logs = second.logs()
    finally:
        second.stop()
    assert "from the snapshot (" in logs, logs
    assert "duplicate search index: flat over 2 rows from the snapshot" in logs, logs
    assert duplicate.value.reason == "DUPLICATE_IDENTITY"
    assert duplicate.value.metadata["candidate_citizen_id"] == CITIZEN_B
    assert result.match_score > 0.9
    assert erased.value.reason == "NOT_ENROLLED"
