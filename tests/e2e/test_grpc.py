"""End to end over a real channel: the real model, the real server, every error reason."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import cv2
import grpc
import numpy as np
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from fvs.api.client import CallFailedError, FvsClient
from fvs.api.errors import DOMAIN, error_info
from fvs.api.v1 import verification_pb2, verification_pb2_grpc
from fvs.audit.log import read_records
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.store.synthetic import minimal_citizen
from tests.conftest import (
    CITIZEN_A,
    CITIZEN_B,
    UNKNOWN_CITIZEN,
    WRONG_CHECK_DIGIT,
    bgr,
    encode,
    photo,
)
from tests.e2e.conftest import DevClient, ServerThread

OBAMA = "3100600445635"
assert OBAMA == CITIZEN_A


@pytest.fixture(scope="module")
def client(server: ServerThread) -> FvsClient:
    with DevClient(server.address) as c:
        enrolled = c.enroll(OBAMA, photo("obama.jpg"), create_if_missing=True)
        assert enrolled.template_version >= 1
        yield c


def consent() -> verification_pb2.Consent:
    given = verification_pb2.Consent(reference="CONSENT-TEST-1")
    given.given_at.GetCurrentTime()
    return given


def refusal(call: Callable[[], object]) -> CallFailedError:
    with pytest.raises(CallFailedError) as info:
        call()
    return info.value


def test_enrol_and_verify_real_faces(client: FvsClient) -> None:
    same = client.verify(OBAMA, photo("obama2.jpg"), purpose="KYC", request_id="req-1")
    other = client.verify(OBAMA, photo("biden.jpg"))
    assert same.similarity > 0.5
    assert other.similarity < 0.3
    assert same.match_score > 90.0
    assert other.match_score < 10.0
    assert same.model.startswith("buffalo_sc@")
    assert same.request_id == "req-1"
    assert len(other.request_id) == 32
    assert len(same.probe_face.landmarks) == 5
    box = same.probe_face.box
    assert 0 <= box.x_min < box.x_max and 0 <= box.y_min < box.y_max
    assert 0.5 < same.probe_face.detection_score <= 1.0
    assert same.timings.total_ms > 0
    # the committed FMR-anchored calibration is loaded with the model
    assert same.score_mapping.startswith("fmr-region-knn-v1/buffalo_sc@")
    assert same.HasField("false_match_rate") and other.HasField("false_match_rate")
    assert same.match_score == 100.0
    assert same.false_match_rate == pytest.approx(1e-5)
    assert other.false_match_rate > 0.1
    assert same.quality.inter_eye_px > 50
    assert 0 < same.quality.overall <= 100


def test_enrolment_versions_and_citizen_record(client: FvsClient) -> None:
    before = client.get_citizen(OBAMA).template_version
    enrolled = client.enroll(OBAMA, photo("obama.jpg"))
    assert enrolled.template_version == before + 1
    assert not enrolled.citizen_created
    record = client.get_citizen(OBAMA)
    assert record.enrolled
    assert record.template_version == before + 1
    assert record.synthetic
    fields = {f.name for f, _ in record.ListFields()}
    assert not fields & {"vector", "embedding", "image", "template"}


def test_poor_enrolment_photo_is_refused_with_its_component(client: FvsClient) -> None:
    version = client.get_citizen(OBAMA).template_version
    blurred = encode(cv2.GaussianBlur(bgr("obama.jpg"), (0, 0), 8))
    failure = refusal(lambda: client.enroll(OBAMA, blurred))
    assert (failure.code, failure.reason) == ("INVALID_ARGUMENT", "LOW_QUALITY")
    assert failure.metadata["component"] == "sharpness"
    assert client.get_citizen(OBAMA).template_version == version
    enrolled = client.enroll(OBAMA, photo("obama.jpg"))
    assert enrolled.quality.sharpness > 25


def test_failed_enrolment_keeps_the_active_template(client: FvsClient) -> None:
    version = client.get_citizen(OBAMA).template_version
    blank = encode(np.full((300, 300, 3), 128, np.uint8))
    assert refusal(lambda: client.enroll(OBAMA, blank)).reason == "NO_FACE"
    assert client.get_citizen(OBAMA).template_version == version
    assert client.verify(OBAMA, photo("obama2.jpg")).similarity > 0.5


def tiny_face() -> bytes:
    tiny = cv2.resize(bgr("obama.jpg"), None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 800, 3), 200, dtype=np.uint8)
    canvas[250 : 250 + tiny.shape[0], 350 : 350 + tiny.shape[1]] = tiny
    return encode(canvas)


def two_faces(pipeline: FacePipeline) -> bytes:
    from tests.integration.test_pipeline import face_tile

    return encode(np.hstack([face_tile(pipeline, "obama.jpg"), face_tile(pipeline, "biden.jpg")]))


def test_every_input_refusal_has_its_status_and_reason(
    client: FvsClient, server: ServerThread, pipeline: FacePipeline
) -> None:
    server.service.store.add_citizen(minimal_citizen(CITIZEN_B))
    huge = b"\xff\xd8" + b"\x00" * (server.settings.pipeline.max_image_bytes + 1)
    cases = [
        ("INVALID_CITIZEN_ID", "INVALID_ARGUMENT", WRONG_CHECK_DIGIT, photo("obama2.jpg")),
        ("INVALID_CITIZEN_ID", "INVALID_ARGUMENT", "12345", photo("obama2.jpg")),
        ("IMAGE_MISSING", "INVALID_ARGUMENT", OBAMA, b""),
        ("IMAGE_TOO_LARGE", "INVALID_ARGUMENT", OBAMA, huge),
        ("IMAGE_UNDECODABLE", "INVALID_ARGUMENT", OBAMA, photo("obama2.jpg")[:3000]),
        ("IMAGE_UNDECODABLE", "INVALID_ARGUMENT", OBAMA, b"GIF89a not really"),
        ("NO_FACE", "INVALID_ARGUMENT", OBAMA, encode(np.zeros((200, 200, 3), np.uint8))),
        ("MULTIPLE_FACES", "INVALID_ARGUMENT", OBAMA, two_faces(pipeline)),
        ("FACE_TOO_SMALL", "INVALID_ARGUMENT", OBAMA, tiny_face()),
        ("CITIZEN_NOT_FOUND", "NOT_FOUND", UNKNOWN_CITIZEN, photo("obama2.jpg")),
        ("NOT_ENROLLED", "NOT_FOUND", CITIZEN_B, photo("obama2.jpg")),
    ]
    for expected_reason, expected_code, citizen, image in cases:
        failure = refusal(lambda c=citizen, i=image: client.verify(c, i))
        assert (failure.reason, failure.code) == (expected_reason, expected_code), (
            expected_reason,
            failure,
        )
        assert failure.message


def test_template_of_another_model(client: FvsClient, server: ServerThread) -> None:
    store = server.service.store
    other = "3" + "2" * 11
    from fvs.citizen_id import complete

    other = complete(other[:12])
    vector = np.zeros(512, np.float32)
    vector[0] = 1.0
    store.add_template(other, "buffalo_l@0123456789ab", vector, create=minimal_citizen(other))
    failure = refusal(lambda: client.verify(other, photo("obama2.jpg")))
    assert (failure.code, failure.reason) == ("FAILED_PRECONDITION", "TEMPLATE_MODEL_MISMATCH")
    assert failure.metadata["template_model"] == "buffalo_l@0123456789ab"


def test_invalid_request_id(client: FvsClient) -> None:
    failure = refusal(lambda: client.verify(OBAMA, photo("obama2.jpg"), request_id="x" * 200))
    assert (failure.code, failure.reason) == ("INVALID_ARGUMENT", "INVALID_REQUEST")


def test_unexpected_failure_is_internal_and_generic(
    client: FvsClient, server: ServerThread, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    def broken(citizen_id: str) -> None:
        raise RuntimeError("secret detail: disk sector 7")

    monkeypatch.setattr(server.service.index, "lookup", broken)
    failure = refusal(lambda: client.verify(OBAMA, photo("obama2.jpg")))
    assert (failure.code, failure.reason) == ("INTERNAL", "INTERNAL")
    assert "secret" not in failure.message
    assert any("secret detail" in (r.exc_text or "") for r in caplog.records)


def test_error_details_are_google_rpc_status(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Verify(
                verification_pb2.VerifyRequest(
                    citizen_id="1", image=b"x", purpose="KYC", consent=consent()
                )
            )
        status = rpc_status.from_call(info.value)
    assert isinstance(status, status_pb2.Status)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    detail = error_info(status)
    assert detail is not None
    assert (detail.domain, detail.reason) == (DOMAIN, "INVALID_CITIZEN_ID")
    assert detail.metadata["field"] == "citizen_id"


def test_delete_enrollment(client: FvsClient, server: ServerThread) -> None:
    other = "1234545678781"
    client.enroll(other, photo("biden.jpg"), create_if_missing=True)
    assert client.verify(other, photo("biden2.jpg")).similarity > 0.5
    assert client.delete_enrollment(other).templates_deleted >= 1
    assert refusal(lambda: client.verify(other, photo("biden2.jpg"))).reason == "NOT_ENROLLED"
    assert not client.get_citizen(other).enrolled


def test_reflection_lists_the_services(server: ServerThread) -> None:
    with grpc.insecure_channel(server.address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {
        "fvs.v1.FaceVerification",
        "fvs.v1.Registry",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services


def health_of(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return int(response.status)


def test_health_is_not_serving_until_the_model_is_warm(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    release = threading.Event()

    def slow_loader() -> FacePipeline:
        assert release.wait(30)
        return pipeline

    running = ServerThread(settings_factory(), slow_loader)
    try:
        assert health_of(running.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert (
            health_of(running.address, "fvs.v1.FaceVerification")
            == health_pb2.HealthCheckResponse.NOT_SERVING
        )
        with DevClient(running.address) as early:
            failure = refusal(lambda: early.verify(OBAMA, photo("obama2.jpg")))
        assert (failure.code, failure.reason) == ("UNAVAILABLE", "MODEL_NOT_READY")
        release.set()
        running.loaded.result(timeout=30)
        assert health_of(running.address) == health_pb2.HealthCheckResponse.SERVING
        with DevClient(running.address) as ready:
            ready.enroll(OBAMA, photo("obama.jpg"), create_if_missing=True)
            assert ready.verify(OBAMA, photo("obama2.jpg")).similarity > 0.5
    finally:
        release.set()
        running.stop()


async def test_fifty_concurrent_verify_calls(client: FvsClient, server: ServerThread) -> None:
    client.enroll(CITIZEN_B, photo("biden.jpg"), create_if_missing=True)
    probes = {
        "obama2.jpg": (OBAMA, True),
        "biden.jpg": (OBAMA, False),
        "biden2.jpg": (CITIZEN_B, True),
        "obama.jpg": (CITIZEN_B, False),
    }
    names = [list(probes)[i % 4] for i in range(50)]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        calls = [
            stub.Verify(
                verification_pb2.VerifyRequest(
                    citizen_id=probes[name][0],
                    image=photo(name),
                    request_id=f"c{i}",
                    purpose="KYC",
                    consent=consent(),
                ),
                timeout=120,
            )
            for i, name in enumerate(names)
        ]
        responses = await asyncio.gather(*calls)
    assert len(responses) == 50
    for i, (name, response) in enumerate(zip(names, responses, strict=True)):
        assert response.request_id == f"c{i}"
        genuine = probes[name][1]
        assert (response.similarity > 0.5) if genuine else (response.similarity < 0.3), name


def test_verify_batch_answers_each_item_in_order(client: FvsClient, server: ServerThread) -> None:
    single = client.verify(OBAMA, photo("obama2.jpg")).similarity
    items = [
        verification_pb2.VerifyRequest(
            citizen_id=OBAMA,
            image=photo("obama2.jpg"),
            purpose="KYC",
            consent=consent(),
            request_id="b0",
        ),
        verification_pb2.VerifyRequest(
            citizen_id=WRONG_CHECK_DIGIT,
            image=photo("obama2.jpg"),
            purpose="KYC",
            consent=consent(),
            request_id="b1",
        ),
        verification_pb2.VerifyRequest(
            citizen_id=OBAMA,
            image=photo("biden.jpg"),
            purpose="KYC",
            consent=consent(),
            request_id="b2",
        ),
        verification_pb2.VerifyRequest(
            citizen_id=OBAMA, image=photo("obama2.jpg"), purpose="KYC", request_id="b3"
        ),  # no consent
    ]
    with grpc.insecure_channel(server.address) as channel:
        stub = verification_pb2_grpc.FaceVerificationStub(channel)
        response = stub.VerifyBatch(verification_pb2.VerifyBatchRequest(items=items), timeout=60)
        with pytest.raises(grpc.RpcError) as too_many:
            stub.VerifyBatch(verification_pb2.VerifyBatchRequest(items=items * 17), timeout=60)
    first, second, third, fourth = response.results
    assert first.response.request_id == "b0"
    assert first.response.similarity == pytest.approx(single, abs=1e-5)
    assert (second.error.code, second.error.reason) == (3, "INVALID_CITIZEN_ID")
    assert second.error.metadata["problem"] == "check_digit"
    assert third.response.similarity < 0.3
    assert (fourth.error.code, fourth.error.reason) == (9, "CONSENT_REQUIRED")
    assert too_many.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    records = [
        r
        for r in read_records(server.parts.gate.audit.path)
        if r["request_id"] in {"b0", "b1", "b2", "b3"}
    ]
    assert sorted(r["request_id"] for r in records) == ["b0", "b1", "b2", "b3"]
