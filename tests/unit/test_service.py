"""The service's rules over a fake pipeline (the real model is exercised in integration/e2e)."""

from pathlib import Path

import numpy as np
import pytest

from fvs.domain import Consent, EnrollRequest, Face, Probe, Timings, VerifyRequest
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.pipeline import ModelInfo
from fvs.pipeline.score import LogisticMapping
from fvs.service import FaceService
from fvs.store.sqlite import SqliteStore
from fvs.store.synthetic import minimal_citizen, random_templates
from tests.conftest import CITIZEN_A, CITIZEN_B, WRONG_CHECK_DIGIT

FACE = Face(box=(10, 10, 90, 110), landmarks=((30, 40),) * 5, score=0.9)
VECTORS = random_templates(3, 512, seed=1)


class FakePipeline:
    """Photo bytes b"face-N" embed to VECTORS[N]; b"noface" has no face."""

    def __init__(self, model_id: str = "fake@000000000000") -> None:
        self.info = ModelInfo("fake", model_id, ["CPUExecutionProvider"], "d" * 64, "r" * 64)
        self.mapping = None  # uncalibrated: the service's fallback mapping applies
        self.manifest = type("M", (), {"recognizer": type("R", (), {"embedding_size": 512})})
        self.calls = 0

    def extract(self, data: bytes, purpose: str = "verify") -> Probe:
        self.calls += 1
        if data == b"noface":
            raise FvsError(ErrorCode.NO_FACE, "no face")
        return Probe(FACE, VECTORS[int(data.decode().split("-")[1])], Timings())


@pytest.fixture
def service(tmp_path: Path) -> FaceService:
    svc = FaceService(SqliteStore(tmp_path), LogisticMapping())
    svc.set_pipeline(FakePipeline())  # type: ignore[arg-type]
    return svc


def code_of(fn, *args) -> ErrorCode:  # type: ignore[no-untyped-def]
    with pytest.raises(FvsError) as info:
        fn(*args)
    return info.value.code


def test_not_ready_until_a_pipeline_is_set(tmp_path: Path) -> None:
    svc = FaceService(SqliteStore(tmp_path), LogisticMapping())
    assert not svc.ready
    assert code_of(svc.verify, VerifyRequest(CITIZEN_A, b"face-0")) is ErrorCode.MODEL_NOT_READY
    assert code_of(svc.enroll, EnrollRequest(CITIZEN_A, b"face-0", True)) is (
        ErrorCode.MODEL_NOT_READY
    )


def test_enrol_then_verify(service: FaceService) -> None:
    enrolled = service.enroll(EnrollRequest(CITIZEN_A, b"face-0", create_if_missing=True))
    assert enrolled.citizen_created
    assert enrolled.template_version == 1
    same = service.verify(VerifyRequest(CITIZEN_A, b"face-0", request_id="r-1"))
    other = service.verify(VerifyRequest(CITIZEN_A, b"face-1"))
    assert same.similarity == pytest.approx(1.0)
    assert same.match_score == pytest.approx(LogisticMapping().percent(1.0))
    assert same.request_id == "r-1"
    assert len(other.request_id) == 32  # generated
    assert other.similarity == pytest.approx(float(VECTORS[0] @ VECTORS[1]), abs=1e-6)
    assert other.match_score < same.match_score
    assert same.template_version == 1
    assert same.score_mapping == LogisticMapping().id


def test_verify_refusals(service: FaceService) -> None:
    service.store.add_citizen(minimal_citizen(CITIZEN_B))
    cases = {
        ErrorCode.INVALID_CITIZEN_ID: VerifyRequest(WRONG_CHECK_DIGIT, b"face-0"),
        ErrorCode.IMAGE_MISSING: VerifyRequest(CITIZEN_A, b""),
        ErrorCode.CITIZEN_NOT_FOUND: VerifyRequest(CITIZEN_A, b"face-0"),
        ErrorCode.NOT_ENROLLED: VerifyRequest(CITIZEN_B, b"face-0"),
        ErrorCode.INVALID_REQUEST: VerifyRequest(CITIZEN_B, b"face-0", request_id="x" * 129),
    }
    for expected, request in cases.items():
        assert code_of(service.verify, request) is expected, expected


def test_store_refusals_do_not_run_the_model(service: FaceService) -> None:
    fake = service.pipeline
    code_of(service.verify, VerifyRequest(CITIZEN_A, b"face-0"))
    assert fake.calls == 0  # type: ignore[attr-defined]


def test_oversize_consent_reference_is_refused(service: FaceService) -> None:
    request = VerifyRequest(CITIZEN_A, b"face-0", consent=Consent("c" * 257, None))
    assert code_of(service.verify, request) is ErrorCode.INVALID_REQUEST


def test_template_of_another_model_is_never_compared(service: FaceService) -> None:
    service.enroll(EnrollRequest(CITIZEN_A, b"face-0", create_if_missing=True))
    service.set_pipeline(FakePipeline("other@111111111111"))  # type: ignore[arg-type]
    with pytest.raises(FvsError) as info:
        service.verify(VerifyRequest(CITIZEN_A, b"face-0"))
    assert info.value.code is ErrorCode.TEMPLATE_MODEL_MISMATCH
    assert info.value.metadata["template_model"] == "fake@000000000000"


def test_failed_enrolment_keeps_the_previous_template(service: FaceService) -> None:
    service.enroll(EnrollRequest(CITIZEN_A, b"face-0", create_if_missing=True))
    assert code_of(service.enroll, EnrollRequest(CITIZEN_A, b"noface")) is ErrorCode.NO_FACE
    template = service.store.active_template(CITIZEN_A)
    assert template is not None
    assert template.version == 1
    assert np.array_equal(template.vector, VECTORS[0])


def test_failed_enrolment_with_create_leaves_no_record(service: FaceService) -> None:
    assert code_of(service.enroll, EnrollRequest(CITIZEN_B, b"noface", True)) is (ErrorCode.NO_FACE)
    assert service.store.get_citizen(CITIZEN_B) is None


def test_enrol_unknown_citizen_without_create(service: FaceService) -> None:
    assert code_of(service.enroll, EnrollRequest(CITIZEN_B, b"face-0")) is (
        ErrorCode.CITIZEN_NOT_FOUND
    )


def test_get_citizen_and_delete(service: FaceService) -> None:
    service.enroll(EnrollRequest(CITIZEN_A, b"face-0", create_if_missing=True))
    view = service.get_citizen(CITIZEN_A)
    assert view.template_version == 1
    assert service.delete_enrollment(CITIZEN_A) == 1
    assert service.get_citizen(CITIZEN_A).template_version == 0
    assert code_of(service.verify, VerifyRequest(CITIZEN_A, b"face-0")) is ErrorCode.NOT_ENROLLED
    assert code_of(service.get_citizen, CITIZEN_B) is ErrorCode.CITIZEN_NOT_FOUND
    assert code_of(service.get_citizen, "123") is ErrorCode.INVALID_CITIZEN_ID
