"""1:N duplicate search at enrolment (issue 9), over a real server and channel, the real model
and the committed photos: obama.jpg and obama2.jpg are two photos of one person, biden.jpg
another person."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fvs.api.client import CallFailedError, FvsClient
from fvs.audit.log import read_records
from fvs.audit.trail import audit_path
from fvs.citizen_id import complete
from fvs.cli import main
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from tests.conftest import photo
from tests.e2e.conftest import ServerThread

A, B, C, D = (complete(f"1{n:011d}") for n in (9100000001, 9100000002, 9100000003, 9100000004))


def _server(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline, mode: str
) -> Iterator[tuple[ServerThread, FvsClient, Path]]:
    settings = settings_factory()
    settings.dedup.mode = mode  # type: ignore[assignment]
    running = ServerThread(settings, lambda: pipeline)
    running.loaded.result(timeout=60)
    with FvsClient(running.address) as client:
        yield running, client, settings.store.data_dir
    running.stop()


@pytest.fixture
def refusing(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> Iterator[tuple[ServerThread, FvsClient, Path]]:
    yield from _server(settings_factory, pipeline, "refuse")


@pytest.fixture
def flagging(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> Iterator[tuple[ServerThread, FvsClient, Path]]:
    yield from _server(settings_factory, pipeline, "flag")


def _refusal(call: Callable[[], object]) -> CallFailedError:
    with pytest.raises(CallFailedError) as info:
        call()
    return info.value


def _cases(data: Path, capsys: pytest.CaptureFixture[str], status: str = "all") -> list[dict]:
    capsys.readouterr()
    assert main(["registry", "duplicates", "list", "--status", status, "--json",
                 "--data-dir", str(data)]) == 0  # fmt: skip
    cases: list[dict] = json.loads(capsys.readouterr().out)
    return cases


def test_refuse_mode_refuses_a_second_identity_and_keeps_the_case(
    refusing: tuple[ServerThread, FvsClient, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, client, data = refusing
    client.enroll(A, photo("obama.jpg"), create_if_missing=True)
    error = _refusal(lambda: client.enroll(B, photo("obama2.jpg"), create_if_missing=True))
    assert error.code == "FAILED_PRECONDITION"
    assert error.reason == "DUPLICATE_IDENTITY"
    assert error.metadata["candidate_citizen_id"] == A
    assert float(error.metadata["candidate_score"]) > 50
    assert error.metadata["candidates"] == "1"
    case_id = int(error.metadata["case_id"])
    # nothing was written for B: no record was created, no template stored
    assert _refusal(lambda: client.get_citizen(B)).reason == "CITIZEN_NOT_FOUND"

    # the same citizen enrolling again is a new version, not a duplicate of itself
    assert client.enroll(A, photo("obama2.jpg")).template_version == 2
    # another person is not a duplicate
    assert client.enroll(C, photo("biden.jpg"), create_if_missing=True).duplicates == []

    # the refusal is audited with the case it opened, never with the candidate's ID
    (record,) = [r for r in read_records(audit_path(data)) if r["reason"] == "DUPLICATE_IDENTITY"]
    assert record["duplicate_case"] == case_id and record["operation"] == "Enroll"
    assert A not in json.dumps(record) and B not in json.dumps(record)

    (case,) = _cases(data, capsys)
    assert case["case_id"] == case_id
    assert (case["source"], case["citizen_id"], case["candidate_id"]) == ("refused", B, A)
    assert case["template_version"] == 0 and case["status"] == "open"

    # adjudicated as different people (twins): the pair is never raised again
    assert main(["registry", "duplicates", "resolve", str(case_id), "--verdict",
                 "different-people", "--note", "twins", "--data-dir", str(data)]) == 0  # fmt: skip
    assert client.enroll(B, photo("obama.jpg"), create_if_missing=True).template_version == 1
    (resolved,) = _cases(data, capsys)
    assert resolved["status"] == "different_people" and resolved["note"] == "twins"
    # a resolved case cannot be resolved again; an unknown one is not found
    capsys.readouterr()
    assert main(["registry", "duplicates", "resolve", str(case_id), "--verdict",
                 "same-person", "--data-dir", str(data)]) != 0  # fmt: skip
    assert "INVALID_TRANSITION" in capsys.readouterr().err
    assert main(["registry", "duplicates", "resolve", "999", "--verdict",
                 "same-person", "--data-dir", str(data)]) != 0  # fmt: skip
    assert "CASE_NOT_FOUND" in capsys.readouterr().err

    # but a third citizen with the same face is refused again (it names A or B)
    error = _refusal(lambda: client.enroll(D, photo("obama.jpg"), create_if_missing=True))
    assert error.reason == "DUPLICATE_IDENTITY"
    assert error.metadata["candidate_citizen_id"] in {A, B}
    assert error.metadata["candidates"] == "2"


def test_an_erased_citizen_no_longer_matches(
    refusing: tuple[ServerThread, FvsClient, Path],
) -> None:
    _, client, _ = refusing
    client.enroll(A, photo("obama.jpg"), create_if_missing=True)
    assert _refusal(lambda: client.enroll(B, photo("obama2.jpg"), create_if_missing=True))
    client.delete_enrollment(A)
    assert client.enroll(B, photo("obama2.jpg"), create_if_missing=True).duplicates == []
    found = client.search_duplicates(k=5, image=photo("obama.jpg"))
    assert [c.citizen_id for c in found.candidates] == [B]


def test_flag_mode_stores_and_lists_the_candidates(
    flagging: tuple[ServerThread, FvsClient, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, client, data = flagging
    client.enroll(A, photo("obama.jpg"), create_if_missing=True)
    client.enroll(C, photo("biden.jpg"), create_if_missing=True)
    response = client.enroll(B, photo("obama2.jpg"), create_if_missing=True)
    assert response.template_version == 1
    (candidate,) = response.duplicates
    assert candidate.citizen_id == A and candidate.duplicate
    assert candidate.template_version == 1 and candidate.similarity > 0.4
    assert response.duplicate_case_id > 0
    (case,) = _cases(data, capsys, "open")
    assert (case["source"], case["citizen_id"], case["template_version"]) == ("flagged", B, 1)
    (record,) = [r for r in read_records(audit_path(data)) if r.get("duplicate_case")]
    assert record["duplicate_case"] == response.duplicate_case_id and record["outcome"] == "OK"
    # B is enrolled and verifiable
    assert client.get_citizen(B).template_version == 1


def test_search_duplicates_rpc(
    flagging: tuple[ServerThread, FvsClient, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    running, client, _ = flagging
    client.enroll(A, photo("obama.jpg"), create_if_missing=True)
    client.enroll(C, photo("biden.jpg"), create_if_missing=True)
    by_photo = client.search_duplicates(k=5, image=photo("obama2.jpg"))
    assert [c.citizen_id for c in by_photo.candidates] == [A, C]  # best first
    assert by_photo.candidates[0].duplicate and not by_photo.candidates[1].duplicate
    assert by_photo.max_fmr > 0 and by_photo.model
    by_citizen = client.search_duplicates(k=5, citizen_id=A)
    assert [c.citizen_id for c in by_citizen.candidates] == [C]  # A itself left out
    assert len(client.search_duplicates(k=1, image=photo("obama2.jpg")).candidates) == 1

    bad_k = _refusal(lambda: client.search_duplicates(k=101, citizen_id=A))
    assert (bad_k.code, bad_k.reason) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    nothing = _refusal(lambda: client.search_duplicates(k=3))
    assert (nothing.code, nothing.metadata.get("field")) == ("INVALID_ARGUMENT", "probe")
    bad_id = _refusal(lambda: client.search_duplicates(citizen_id="1234"))
    assert bad_id.reason == "INVALID_CITIZEN_ID"
    unknown = _refusal(lambda: client.search_duplicates(citizen_id=D))
    assert unknown.reason == "CITIZEN_NOT_FOUND"
    no_face = _refusal(lambda: client.search_duplicates(image=b"not an image"))
    assert no_face.code == "INVALID_ARGUMENT"

    # the same through the command line
    capsys.readouterr()
    photo_path = Path(__file__).resolve().parents[1] / "data" / "obama2.jpg"
    assert main(["registry", "search-duplicates", "--image", str(photo_path), "--k", "2",
                 "--server", running.address]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(A) and lines[0].endswith("DUPLICATE")
    assert lines[1].startswith(C) and not lines[1].endswith("DUPLICATE")


def test_dedup_scan_finds_the_pairs(
    flagging: tuple[ServerThread, FvsClient, Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    _, client, data = flagging
    client.enroll(A, photo("obama.jpg"), create_if_missing=True)
    client.enroll(B, photo("obama2.jpg"), create_if_missing=True)  # flagged, stored
    client.enroll(C, photo("biden.jpg"), create_if_missing=True)
    client.enroll(D, photo("biden2.jpg"), create_if_missing=True)  # flagged, stored
    report = tmp_path / "pairs.json"
    capsys.readouterr()
    code = main(["registry", "dedup-scan", "--format", "json", "--out", str(report),
                 "--open-cases", "--no-progress", "--data-dir", str(data)])  # fmt: skip
    assert code == 1  # pairs found
    found = json.loads(report.read_text())
    assert found["templates"] == 4
    assert {(p["citizen_a"], p["citizen_b"]) for p in found["pairs"]} == {
        tuple(sorted((A, B))),
        tuple(sorted((C, D))),
    }
    assert "2 duplicate pair(s) among 4 templates" in capsys.readouterr().err
    # the two flagged cases were open already: --open-cases opened none for those pairs
    open_cases = _cases(data, capsys, "open")
    assert sorted(c["source"] for c in open_cases) == ["flagged", "flagged"]


def test_the_index_follows_a_restart(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    """The index is built from the store at start: what was enrolled before a restart is
    still caught after it (never a silent miss)."""
    settings = settings_factory()
    first = ServerThread(settings, lambda: pipeline)
    first.loaded.result(timeout=60)
    with FvsClient(first.address) as client:
        client.enroll(A, photo("obama.jpg"), create_if_missing=True)
    first.stop()
    second = ServerThread(settings, lambda: pipeline)
    second.loaded.result(timeout=60)
    try:
        with FvsClient(second.address) as client:
            error = _refusal(lambda: client.enroll(B, photo("obama2.jpg"), create_if_missing=True))
            assert error.reason == "DUPLICATE_IDENTITY"
    finally:
        second.stop()


def test_reindex_writes_the_snapshot_the_next_start_loads(
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_factory()
    settings.store.snapshot_interval_s = 3600.0
    first = ServerThread(settings, lambda: pipeline)
    first.loaded.result(timeout=60)
    with FvsClient(first.address) as client:
        client.enroll(A, photo("obama.jpg"), create_if_missing=True)
        client.enroll(C, photo("biden.jpg"), create_if_missing=True)
    first.stop()
    data = settings.store.data_dir
    for snap in (data / "cache").glob("index-*.snap"):
        snap.unlink()  # gone: reindex makes it again from the store
    capsys.readouterr()
    assert main(["registry", "reindex", "--data-dir", str(data)]) == 0
    assert "reindexed 2 templates" in capsys.readouterr().out
    assert list((data / "cache").glob("index-*.snap"))
    second = ServerThread(settings, lambda: pipeline)
    second.loaded.result(timeout=60)
    try:
        dedup = second.service.dedup
        assert dedup is not None and dedup.source == "snapshot"
        with FvsClient(second.address) as client:
            error = _refusal(lambda: client.enroll(B, photo("biden2.jpg"), create_if_missing=True))
            assert error.metadata["candidate_citizen_id"] == C
    finally:
        second.stop()
