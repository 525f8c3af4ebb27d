"""Security review findings (issue 10), each over a real mutual-TLS server."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf import json_format
from grpc_status import rpc_status

from fvs import receipts
from fvs.access.admin import AdminService
from fvs.access.gate import Gate
from fvs.access.model import Caller, Role
from fvs.access.policy import ConsentRules
from fvs.access.rate import RateLimiter
from fvs.api.client import CallFailedError, ClientTls, FvsClient, channel
from fvs.api.errors import error_info, retry_info
from fvs.api.guard import transport_limit
from fvs.api.readiness import Readiness, probe_stores
from fvs.api.server import FvsServer, build_parts, serve
from fvs.api.v1 import admin_pb2, admin_pb2_grpc, verification_pb2, verification_pb2_grpc
from fvs.audit.log import read_records, verify_chain
from fvs.audit.trail import audit_key, audit_path
from fvs.cli import main as fvs_main
from fvs.config import Settings
from fvs.errors import ConfigError, ErrorCode
from fvs.pipeline.pipeline import FacePipeline
from fvs.pki import CertificateAuthority, Issued, init_pki, public_key_pem, server_dir
from tests.conftest import CITIZEN_A, photo
from tests.e2e.conftest import ServerThread

OPERATOR = Caller(local_operator="test-operator")
FUZZ_CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"


@dataclass
class Secure:
    server: ServerThread
    pki: Path
    data: Path
    ca: CertificateAuthority
    certs: dict[str, Issued]

    def tls(self, name: str) -> ClientTls:
        issued = self.certs[name]
        assert issued.key_pem is not None
        return ClientTls(self.ca.pem, issued.cert_pem, issued.key_pem)

    def client(self, name: str) -> FvsClient:
        return FvsClient(self.server.address, timeout_s=20, tls=self.tls(name))

    def audit(self) -> list[dict[str, Any]]:
        return list(read_records(audit_path(self.data)))

    def audit_lines(self) -> list[bytes]:
        return audit_path(self.data).read_bytes().splitlines()


@pytest.fixture(scope="module")
def secure(
    tmp_path_factory: pytest.TempPathFactory,
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
) -> Iterator[Secure]:
    pki = tmp_path_factory.mktemp("pki")
    settings = settings_factory()
    data = settings.store.data_dir
    ca, _ = init_pki(pki, "Test Authority", [])
    settings.access.tls_dir = server_dir(pki)
    certs = {
        "gateway": ca.issue("gateway-1", "BANK-A"),
        "stranger": ca.issue("stranger", "BANK-A"),
        "operator": ca.issue("fvs-admin", "FVS"),
    }
    admin = AdminService(Gate.open(data, ConsentRules()), ca.pem)
    admin.add_agency(OPERATOR, "BANK-A", "PRIVATE", "Bank A", "0107536000001", "banking", [])
    admin.grant_permit(
        OPERATOR,
        "BANK-A",
        ["KYC"],
        None,
        dt.datetime.now(dt.UTC).replace(year=dt.datetime.now(dt.UTC).year + 1),
    )
    admin.register_system(OPERATOR, "BANK-A", "gateway", cert_pem=certs["gateway"].cert_pem)
    admin.register_system(
        OPERATOR,
        "",
        "operator",
        cert_pem=certs["operator"].cert_pem,
        roles=frozenset({Role.ADMIN, Role.REGISTRY}),
    )
    admin.gate.close()
    server = ServerThread(settings, lambda: pipeline)
    server.loaded.result(timeout=60)
    dep = Secure(server, pki, data, ca, certs)
    with dep.client("operator") as operator:
        operator.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
    yield dep
    server.stop()


def refused(call: Callable[[], object]) -> CallFailedError:
    with pytest.raises(CallFailedError) as caught:
        call()
    return caught.value


def rpc_refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    exc: Any = caught.value
    info = error_info(rpc_status.from_call(exc))
    assert info is not None, exc.details()
    return exc.code(), info.reason, dict(info.metadata)


def test_a_100kb_consent_reference_is_refused_bounded_and_the_service_lives_on(
    secure: Secure,
) -> None:
    """Finding 1: the value is refused before it is authorised or recorded; the record is
    small, the chain stays readable, and the next call (and the local admin) still work."""
    huge = "C" * 100_000
    for name in ("stranger", "gateway"):  # unregistered and registered systems alike
        before = len(secure.audit())
        with secure.client(name) as c:
            failure = refused(lambda c=c: c.verify(CITIZEN_A, photo("obama2.jpg"), "KYC", huge))
        assert (failure.code, failure.reason) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
        assert failure.metadata["field"] == "consent.reference"
        records = secure.audit()
        assert len(records) == before + 1
        assert (records[-1]["outcome"], records[-1]["reason"]) == ("REFUSED", "INVALID_REQUEST")
        assert "100000 characters" in records[-1]["consent_ref"]
        assert max(len(line) for line in secure.audit_lines()) < 4096
    # every caller-supplied text, not only the consent reference
    with secure.client("gateway") as gw:
        for kwargs in (
            {"purpose": "P" * 100_000},
            {"request_id": "r" * 100_000},
            {"request_id": "line\nbreak"},
        ):
            args: dict[str, Any] = {"purpose": "KYC", "consent_reference": "C-1", **kwargs}
            failure = refused(lambda a=args: gw.verify(CITIZEN_A, photo("obama2.jpg"), **a))
            assert (failure.code, failure.reason) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
        assert max(len(line) for line in secure.audit_lines()) < 4096
        assert gw.verify(CITIZEN_A, photo("obama2.jpg"), "KYC", "C-OK").similarity > 0.5
    assert verify_chain(audit_path(secure.data), audit_key(secure.data)).ok
    local = AdminService(Gate.open(secure.data, ConsentRules()))
    try:
        assert [a.code for a in local.agencies(OPERATOR)] == ["BANK-A"]
    finally:
        local.gate.close()


def _verify_message(**consent: Any) -> verification_pb2.VerifyRequest:
    request = verification_pb2.VerifyRequest(
        citizen_id=CITIZEN_A, image=photo("obama2.jpg"), purpose="KYC"
    )
    request.consent.reference = "C-1"
    request.consent.given_at.seconds = consent.get("seconds", 1_700_000_000)
    request.consent.given_at.nanos = consent.get("nanos", 0)
    return request


def test_malformed_times_are_invalid_argument_and_audited(secure: Secure) -> None:
    """Finding 6: never UNKNOWN with a Python exception text."""
    year_10000 = 253_402_300_800
    with channel(secure.server.address, secure.tls("gateway")) as ch:
        stub = verification_pb2_grpc.FaceVerificationStub(ch)
        for fields in ({"seconds": year_10000}, {"nanos": -1}, {"seconds": -(10**12)}):
            before = len(secure.audit())
            code, reason, metadata = rpc_refused(
                lambda f=fields: stub.Verify(_verify_message(**f), timeout=20)
            )
            assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
            assert metadata["field"] == "consent.given_at"
            records = secure.audit()
            assert len(records) == before + 1
            assert records[-1]["reason"] == "INVALID_REQUEST"
    with channel(secure.server.address, secure.tls("operator")) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        request = admin_pb2.GrantPermitRequest(agency_code="BANK-A", purposes=["KYC"])
        request.valid_until.seconds = year_10000
        before = len(secure.audit())
        code, reason, metadata = rpc_refused(lambda: admin.GrantPermit(request, timeout=20))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
        assert metadata["field"] == "valid_until"
        assert secure.audit()[-1]["operation"] == "Admin/GrantPermit"
        assert len(secure.audit()) == before + 1


def test_the_server_refuses_a_tls_folder_holding_the_ca_key(
    secure: Secure, tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    """Finding 5: under its own name or any other, the CA key keeps the server from starting."""
    settings = settings_factory()
    settings.server.address = "127.0.0.1:0"
    for name in ("ca.key", "backup.pem"):
        folder = tmp_path / name.replace(".", "-")
        shutil.copytree(server_dir(secure.pki), folder)
        shutil.copy(secure.pki / "ca" / "ca.key", folder / name)
        settings.access.tls_dir = folder
        with pytest.raises(ConfigError, match="CA's private key"):
            asyncio.run(serve(settings))
    assert not list(settings.store.data_dir.glob("*.sqlite3"))  # refused before any data


def test_a_taken_address_is_an_error_unless_sharing_is_asked(
    secure: Secure, settings_factory: Callable[..., Settings]
) -> None:
    """Finding 8: gRPC's default SO_REUSEPORT let a second server start and split the calls."""
    settings = settings_factory()
    settings.access.tls_dir = server_dir(secure.pki)
    parts = build_parts(settings)

    async def second_on_taken_port() -> None:
        server = FvsServer(settings, parts)
        try:
            with pytest.raises(OSError, match="in use"):
                await server.start(secure.server.address)
        finally:
            await server.stop(0)

    async def two_that_share() -> tuple[int, int]:
        settings.server.reuse_port = True
        first, second = FvsServer(settings, parts), FvsServer(settings, parts)
        try:
            port = await first.start("127.0.0.1:0")
            return port, await second.start(f"127.0.0.1:{port}")
        finally:
            await first.stop(0)
            await second.stop(0)

    try:
        asyncio.run(second_on_taken_port())
        port, shared = asyncio.run(two_that_share())
        assert port == shared
    finally:
        parts.close()


def test_insecure_with_a_tls_dir_is_refused(
    secure: Secure, settings_factory: Callable[..., Settings]
) -> None:
    """Finding 12: the pair used to serve plaintext silently."""
    settings = settings_factory()
    settings.server.address = "127.0.0.1:0"
    settings.access.insecure = True
    settings.access.tls_dir = server_dir(secure.pki)
    with pytest.raises(ConfigError, match="exclude each other"):
        asyncio.run(serve(settings))


def test_system_add_writes_nothing_before_its_checks_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 10: a second `system add` with the same name overwrote the first one's key and
    certificate in --out before failing with ALREADY_EXISTS."""
    pki, data, out = tmp_path / "pki", tmp_path / "data", tmp_path / "bank-a"
    d = ["--data-dir", str(data)]
    assert fvs_main(["pki", "init", "--dir", str(pki), *d]) == 0
    agency = ["--code", "BANK-A", "--kind", "PRIVATE", "--name", "Bank A"]
    agency += ["--registration", "1", "--mission", "banking"]
    assert fvs_main(["admin", "agency", "add", *d, *agency]) == 0
    add = ["admin", "system", "add", *d, "--pki-dir", str(pki), "--name", "gw"]
    assert fvs_main([*add, "--agency", "BANK-A", "--out", str(out)]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(first) == {"gw.pem", "gw.key"}
    capsys.readouterr()
    assert fvs_main([*add, "--agency", "BANK-A", "--out", str(out)]) == 1  # same name
    assert "ALREADY_EXISTS" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    elsewhere = tmp_path / "elsewhere"
    assert fvs_main([*add, "--agency", "BANK-A", "--out", str(elsewhere)]) == 1
    assert fvs_main([*add, "--agency", "NOPE", "--out", str(elsewhere)]) == 1
    assert not elsewhere.exists()
    records = [r for r in read_records(audit_path(data)) if r["outcome"] == "REFUSED"]
    assert [r["reason"] for r in records[-3:]] == [
        "ALREADY_EXISTS",
        "ALREADY_EXISTS",
        "AGENCY_NOT_FOUND",
    ]


def test_cli_errors_honour_json_and_show_error_info(
    secure: Secure, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 14: --json was ignored on errors and ErrorInfo metadata never shown."""
    issued = secure.certs["gateway"]
    assert issued.key_pem is not None
    (tmp_path / "ca.pem").write_bytes(secure.ca.pem)
    (tmp_path / "gw.pem").write_bytes(issued.cert_pem)
    (tmp_path / "gw.key").write_bytes(issued.key_pem)
    photo_path = tmp_path / "probe.jpg"
    photo_path.write_bytes(photo("obama2.jpg"))
    verify = [
        "verify",
        "--server",
        secure.server.address,
        "--ca",
        str(tmp_path / "ca.pem"),
        "--cert",
        str(tmp_path / "gw.pem"),
        "--key",
        str(tmp_path / "gw.key"),
        "--citizen-id",
        CITIZEN_A,
        "--purpose",
        "KYC",
        "--consent-ref",
        "C" * 300,
        str(photo_path),
    ]
    capsys.readouterr()
    assert fvs_main([*verify, "--json"]) == 1
    printed = capsys.readouterr()
    error = json.loads(printed.out)["error"]
    assert (error["code"], error["reason"]) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    assert error["metadata"]["field"] == "consent.reference"
    assert "256" in error["message"]
    assert fvs_main(verify) == 1
    human = capsys.readouterr().err
    assert "INVALID_REQUEST (INVALID_ARGUMENT)" in human
    assert "field=consent.reference" in human


def test_refusals_before_the_servicer_are_audited_or_counted(secure: Secure) -> None:
    """Finding 13: an undecodable message and an oversized VerifyBatch are audited; a message
    over the size limit never reaches FVS code and is counted."""
    assert secure.server.server is not None
    counters = secure.server.server.guard.counters
    with channel(secure.server.address, secure.tls("gateway"), 100 * 1024 * 1024) as ch:
        raw = ch.unary_unary("/fvs.v1.FaceVerification/Verify")
        before = len(secure.audit())
        code, reason, metadata = rpc_refused(lambda: raw(b"\xff\xff\xff\xff", timeout=20))
        assert (code, reason, metadata["problem"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
            "undecodable",
        )
        record = secure.audit()[-1]
        assert len(secure.audit()) == before + 1
        assert (record["operation"], record["reason"]) == ("Verify", "INVALID_REQUEST")
        assert record["system"] == "BANK-A/gateway"
        assert counters.messages_undecodable >= 1

        stub = verification_pb2_grpc.FaceVerificationStub(ch)
        items = [verification_pb2.VerifyRequest(citizen_id=CITIZEN_A)] * 65
        batch = verification_pb2.VerifyBatchRequest(items=items)
        code, reason, metadata = rpc_refused(lambda: stub.VerifyBatch(batch, timeout=20))
        assert (code, reason, metadata["field"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
            "items",
        )
        record = secure.audit()[-1]
        assert (record["operation"], record["details"]["items"]) == ("Verify/VerifyBatch", "65")

        limit = secure.server.settings.server.max_message_bytes
        huge = verification_pb2.VerifyRequest(citizen_id=CITIZEN_A, image=bytes(limit + 1))
        code, reason, metadata = rpc_refused(lambda: stub.Verify(huge, timeout=20))
        assert (code, reason, metadata["limit"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
            "message_bytes",
        )
        assert secure.audit()[-1]["details"]["limit"] == "message_bytes"
        assert counters.messages_oversized == 1
        # past gRPC's own limit the core refuses before any FVS code: nothing to audit
        before = len(secure.audit())
        beyond = verification_pb2.VerifyRequest(image=bytes(transport_limit(limit) + 1))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Verify(beyond, timeout=20)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert len(secure.audit()) == before


def _wait_health(client: FvsClient, want: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    status = client.health()
    while status != want and time.monotonic() < deadline:
        time.sleep(0.05)
        status = client.health()
    return status


def test_health_follows_the_audit_trail(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    """Finding 7: NOT_SERVING while calls fail closed, SERVING again once the trail is back."""
    settings = settings_factory()
    settings.server.health_probe_s = 0.2
    server = ServerThread(settings, lambda: pipeline)
    try:
        server.loaded.result(timeout=60)
        trail = audit_path(settings.store.data_dir)
        with FvsClient(server.address, timeout_s=20) as client:
            assert client.health() == "SERVING"
            client.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
            moved = trail.with_name("moved.jsonl")
            trail.rename(moved)  # the file the server writes is gone: every call fails closed
            failure = refused(lambda: client.get_citizen(CITIZEN_A))
            assert failure.reason == "AUDIT_UNAVAILABLE"
            assert _wait_health(client, "NOT_SERVING") == "NOT_SERVING"
            assert client.health("fvs.v1.FaceVerification") == "NOT_SERVING"
            time.sleep(0.5)  # the probe keeps it NOT_SERVING while the trail is away
            assert client.health() == "NOT_SERVING"
            moved.rename(trail)
            assert _wait_health(client, "SERVING") == "SERVING"
            assert client.get_citizen(CITIZEN_A).enrolled
    finally:
        server.stop()


def test_the_probe_reports_a_store_that_does_not_answer() -> None:
    def broken() -> None:
        raise OSError("database is locked")

    assert probe_stores(lambda: 1).ok
    result = probe_stores(lambda: 1, broken)
    assert not result.ok and "OSError" in result.problem
    readiness = Readiness(lambda: result)
    assert readiness.check() and not readiness.serving
    assert not readiness.failed(ErrorCode.AUDIT_UNAVAILABLE)  # already NOT_SERVING


def test_verify_answers_carry_a_receipt_checked_offline(
    secure: Secure, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed receipts: genuine ones pass `fvs receipt verify`; a tampered one, one checked
    with another key, or one shown with another photo fail."""
    probe = photo("obama2.jpg")
    with secure.client("gateway") as gw:
        answer = gw.verify(CITIZEN_A, probe, "KYC", "FORM-7", request_id="rcpt-1")
    public_pem = secure.pki / "receipt-public.pem"
    claims = receipts.check(
        answer.receipt.payload,
        answer.receipt.signature,
        receipts.load_public_key(public_pem.read_bytes()),
    )
    assert claims["request_id"] == "rcpt-1"
    assert (claims["agency"], claims["system"], claims["purpose"]) == (
        "BANK-A",
        "BANK-A/gateway",
        "KYC",
    )
    assert claims["match_score"] == round(answer.match_score, 4)
    assert claims["image_sha256"] == hashlib.sha256(probe).hexdigest()
    assert claims["consent_sha256"] == hashlib.sha256(b"FORM-7").hexdigest()
    assert claims["model"] == answer.model and claims["score_mapping"] == answer.score_mapping
    assert CITIZEN_A not in answer.receipt.payload.decode()
    record = secure.audit()[-1]
    assert record["receipt"] == hashlib.sha256(answer.receipt.signature).hexdigest()[:32]

    saved = tmp_path / "answer.json"
    saved.write_text(json_format.MessageToJson(answer))
    photo_path = tmp_path / "probe.jpg"
    photo_path.write_bytes(probe)
    check = ["receipt", "verify", str(saved), "--public-key", str(public_pem)]
    capsys.readouterr()
    assert fvs_main([*check, "--image", str(photo_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["claims"]["request_id"] == "rcpt-1"

    tampered = json.loads(answer.receipt.payload)
    tampered["match_score"] = 99.9
    forged = verification_pb2.VerifyResponse()
    forged.CopyFrom(answer)
    forged.receipt.payload = receipts.canonical(tampered)
    saved.write_text(json_format.MessageToJson(forged))
    assert fvs_main([*check, "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["metadata"]["problem"] == "bad_signature"

    saved.write_text(json_format.MessageToJson(answer))
    other = tmp_path / "other.pem"
    other.write_bytes(public_key_pem(ed25519.Ed25519PrivateKey.generate()))
    assert fvs_main(["receipt", "verify", str(saved), "--public-key", str(other)]) == 1
    photo_path.write_bytes(photo("biden.jpg"))
    assert fvs_main([*check, "--image", str(photo_path)]) == 1
    assert "another photo" in capsys.readouterr().err


def test_rate_limits_on_the_permit(secure: Secure) -> None:
    """Per-permit rate limits: RESOURCE_EXHAUSTED / RATE_LIMITED with a RetryInfo delay,
    audited; set and removed through the Admin API, effective at once."""
    with channel(secure.server.address, secure.tls("operator")) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        permit_id = admin.GetAgency(admin_pb2.GetAgencyRequest(code="BANK-A")).permits[0].id
        limited = admin.SetRateLimit(
            admin_pb2.SetRateLimitRequest(permit_id=permit_id, rate_per_s=0.5, burst=2)
        )
        assert (limited.rate_per_s, limited.burst) == (0.5, 2)
        try:
            with channel(secure.server.address, secure.tls("gateway")) as gw_channel:
                stub = verification_pb2_grpc.FaceVerificationStub(gw_channel)
                request = _verify_message(seconds=int(time.time()))
                request.image = b"not a photo"  # refused after authorisation: cheap, counted
                for _ in range(2):
                    _, reason, _ = rpc_refused(lambda: stub.Verify(request, timeout=20))
                    assert reason == "IMAGE_UNDECODABLE"
                with pytest.raises(grpc.RpcError) as caught:
                    stub.Verify(request, timeout=20)
            exc: Any = caught.value
            status = rpc_status.from_call(exc)
            info, retry = error_info(status), retry_info(status)
            assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert info is not None and info.reason == "RATE_LIMITED"
            assert info.metadata["burst"] == "2"
            assert retry is not None
            assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 2.0
            record = secure.audit()[-1]
            assert (record["outcome"], record["reason"]) == ("REFUSED", "RATE_LIMITED")
            assert record["agency"] == "BANK-A" and record["permit"] is None
        finally:
            cleared = admin.SetRateLimit(
                admin_pb2.SetRateLimitRequest(permit_id=permit_id, rate_per_s=0)
            )
            assert not cleared.HasField("rate_per_s")
        _, reason, metadata = rpc_refused(
            lambda: admin.SetRateLimit(
                admin_pb2.SetRateLimitRequest(permit_id=permit_id, rate_per_s=5, burst=0)
            )
        )
        assert (reason, metadata["field"]) == ("INVALID_REQUEST", "burst")


def test_the_token_bucket() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take(1, 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take(1, 2.0, 3) == pytest.approx(0.5)  # empty: one call in 1/rate
    assert limiter.take(2, 2.0, 3) == 0.0  # buckets are per permit
    now[0] += 0.5
    assert limiter.take(1, 2.0, 3) == 0.0
    now[0] += 100
    assert [limiter.take(1, 2.0, 3) for _ in range(4)][-1] > 0  # refills to the burst only


def test_a_54_byte_png_cannot_take_the_server_down(secure: Secure) -> None:
    """Found by fuzzing: OpenCV 5.0 spent 15 s and 3 GB on this PNG (an IDAT length past the
    end of the file); it is refused from its structure before any decoder sees it."""
    tiny = (FUZZ_CORPUS / "decode_image" / "found-oom-png-idat-length").read_bytes()
    assert len(tiny) == 54
    start = time.monotonic()
    with secure.client("gateway") as gw:
        failure = refused(lambda: gw.verify(CITIZEN_A, tiny, "KYC", "C-1"))
    assert (failure.reason, failure.metadata["problem"]) == ("IMAGE_UNDECODABLE", "corrupt")
    assert time.monotonic() - start < 5


def test_image_refusals_over_the_wire(secure: Secure) -> None:
    """Findings 3 and 9 over a real server: bombs refused by their header with the limit they
    break; truncated and unreadable files named as such, with no internal object."""
    hostile = Path(__file__).resolve().parent.parent / "data" / "hostile"
    cases = {
        "bomb_png_header_50000x50000.png": ("IMAGE_TOO_LARGE", "limit", "pixels"),
        "bomb_png_16bit_rgba_39mp.png": ("IMAGE_TOO_LARGE", "limit", "decoded_bytes"),
        "truncated_jpeg_half.jpg": ("IMAGE_UNDECODABLE", "problem", "truncated"),
        "garbage.bin": ("IMAGE_UNDECODABLE", "format", "unknown"),
    }
    with secure.client("gateway") as gw:
        for name, (reason, key, value) in cases.items():
            data = (hostile / name).read_bytes()
            failure = refused(lambda d=data: gw.verify(CITIZEN_A, d, "KYC", "C-1"))
            assert (failure.code, failure.reason) == ("INVALID_ARGUMENT", reason), name
            assert failure.metadata[key] == value, name
            assert "object at" not in failure.message and "BytesIO" not in failure.message
            assert secure.audit()[-1]["reason"] == reason
