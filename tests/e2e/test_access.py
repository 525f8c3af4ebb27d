"""The access rules over real mutual-TLS channels to a real server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from fvs.access.admin import AdminService
from fvs.access.gate import AUDIT_DIR, KEYS_DIR, Gate
from fvs.access.model import Caller, Role
from fvs.access.policy import ConsentRules
from fvs.api.client import CallFailedError, ClientTls, FvsClient, channel
from fvs.api.errors import error_info
from fvs.api.v1 import admin_pb2, admin_pb2_grpc
from fvs.audit.keys import load_or_create_key
from fvs.audit.log import LOG_FILE, read_records, verify_chain
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.pki import CertificateAuthority, Issued, init_pki, server_dir
from tests.conftest import CITIZEN_A, photo
from tests.e2e.conftest import ServerThread

OPERATOR = Caller(local_operator="test-operator")
NOW = dt.datetime.now(dt.UTC)


@dataclass
class Deployment:
    server: ServerThread
    pki: Path
    data: Path
    admin: AdminService
    ca: CertificateAuthority
    certs: dict[str, Issued]

    def tls(self, name: str, ca_pem: bytes | None = None) -> ClientTls:
        issued = self.certs[name]
        assert issued.key_pem is not None
        return ClientTls(ca_pem or self.ca.pem, issued.cert_pem, issued.key_pem)

    def client(self, name: str) -> FvsClient:
        return FvsClient(self.server.address, timeout_s=20, tls=self.tls(name))

    @property
    def audit_path(self) -> Path:
        return self.data / AUDIT_DIR / LOG_FILE

    def audit(self) -> list[dict]:  # type: ignore[type-arg]
        return list(read_records(self.audit_path))


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
) -> Iterator[Deployment]:
    pki = tmp_path_factory.mktemp("pki")
    settings = settings_factory()
    data = settings.store.data_dir
    ca, _ = init_pki(pki, "Test Authority", [])
    settings.access.tls_dir = server_dir(pki)
    admin = AdminService(Gate.open(data, ConsentRules()), ca.pem)
    other_ca = CertificateAuthority.create("Elsewhere")
    certs = {
        "gateway": ca.issue("gateway-1", "BANK-A"),
        "gov": ca.issue("portal", "GOV-B"),
        "late": ca.issue("gw", "LATE"),
        "early": ca.issue("gw", "EARLY"),
        "unregistered": ca.issue("stranger", "BANK-A"),
        "operator": ca.issue("fvs-admin", "FVS"),
        "foreign": other_ca.issue("gateway-1", "BANK-A"),
        "expired": ca.issue("old", "BANK-A", not_before=NOW - dt.timedelta(days=10), days=2),
        "future": ca.issue("new", "BANK-A", not_before=NOW + dt.timedelta(days=2)),
    }
    admin.add_agency(
        OPERATOR,
        "BANK-A",
        "PRIVATE",
        "Bank A PCL",
        "0107536000001",
        "retail banking",
        [("Somchai Jaidee", "dpo@bank-a.example")],
    )
    admin.add_agency(OPERATOR, "GOV-B", "STATE", "Department B", "G-0002", "e-services", [])
    admin.add_agency(OPERATOR, "LATE", "PRIVATE", "Late Ltd", "0105555000003", "lending", [])
    admin.add_agency(OPERATOR, "EARLY", "PRIVATE", "Early Ltd", "0105555000004", "lending", [])
    year = dt.timedelta(days=365)
    admin.grant_permit(OPERATOR, "BANK-A", ["KYC"], None, NOW + year)
    admin.grant_permit(OPERATOR, "GOV-B", ["GOV_SERVICE"], None, NOW + year)
    admin.grant_permit(OPERATOR, "LATE", ["KYC"], NOW - 2 * year, NOW - year)
    admin.grant_permit(OPERATOR, "EARLY", ["KYC"], NOW + year, NOW + 2 * year)
    for name, agency in [
        ("gateway", "BANK-A"),
        ("gov", "GOV-B"),
        ("late", "LATE"),
        ("early", "EARLY"),
        ("expired", "BANK-A"),
        ("future", "BANK-A"),
    ]:
        admin.register_system(OPERATOR, agency, name, cert_pem=certs[name].cert_pem)
    admin.register_system(
        OPERATOR,
        "",
        "operator",
        cert_pem=certs["operator"].cert_pem,
        roles=frozenset({Role.ADMIN, Role.REGISTRY}),
    )
    server = ServerThread(settings, lambda: pipeline)
    server.loaded.result(timeout=60)
    dep = Deployment(server, pki, data, admin, ca, certs)
    with dep.client("operator") as operator:
        operator.enroll(CITIZEN_A, photo("obama.jpg"), create_if_missing=True)
    yield dep
    server.stop()
    admin.gate.close()


def verify(
    client: FvsClient,
    purpose: str = "KYC",
    reference: str = "CONSENT-1",
    given_at: dt.datetime | None = None,
):  # type: ignore[no-untyped-def]
    return client.verify(
        CITIZEN_A, photo("obama2.jpg"), purpose, reference, given_at or dt.datetime.now(dt.UTC)
    )


def refused(call: Callable[[], object]) -> CallFailedError:
    with pytest.raises(CallFailedError) as info:
        call()
    return info.value


def test_happy_path_is_served_and_audited(deployment: Deployment) -> None:
    before = len(deployment.audit())
    with deployment.client("gateway") as gw:
        result = verify(gw, reference="CONSENT-HAPPY")
    assert result.similarity > 0.5
    record = deployment.audit()[before]
    assert (record["agency"], record["system"], record["operation"]) == (
        "BANK-A",
        "BANK-A/gateway",
        "Verify",
    )
    assert (record["outcome"], record["reason"], record["purpose"]) == ("OK", "", "KYC")
    assert record["consent_ref"] == "CONSENT-HAPPY"
    assert record["score"] == pytest.approx(result.match_score, abs=1e-3)
    assert record["model"] == result.model
    assert record["request_id"] == result.request_id
    assert record["conditions"] == "2024-06-18"
    assert record["permit"] == 1
    assert record["latency_ms"] > 0
    text = json.dumps(record)
    assert CITIZEN_A not in text  # only the keyed hash
    assert len(record["citizen"]) == 64


@pytest.mark.parametrize("name", ["foreign", "expired", "future"])
def test_certificates_the_handshake_refuses(deployment: Deployment, name: str) -> None:
    before = len(deployment.audit())
    with deployment.client(name) as c:
        failure = refused(lambda: verify(c))
    assert failure.code == "UNAVAILABLE"  # TLS handshake refused: no call reaches FVS
    assert len(deployment.audit()) == before


def test_no_client_certificate_is_refused(deployment: Deployment) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.ca.pem)
    with grpc.secure_channel(deployment.server.address, creds) as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListAgencies(admin_pb2.ListAgenciesRequest(), timeout=10)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(deployment: Deployment) -> None:
    with FvsClient(deployment.server.address, timeout_s=10) as plain:
        assert refused(lambda: verify(plain)).code == "UNAVAILABLE"


def test_refusals_each_with_their_reason(deployment: Deployment) -> None:
    now = dt.datetime.now(dt.UTC)
    cases = [
        ("unregistered", {}, "PERMISSION_DENIED", "SYSTEM_NOT_REGISTERED"),
        ("gateway", {"purpose": "AUTH"}, "PERMISSION_DENIED", "PURPOSE_NOT_PERMITTED"),
        ("gateway", {"purpose": "NO_SUCH"}, "INVALID_ARGUMENT", "UNKNOWN_PURPOSE"),
        ("gateway", {"purpose": ""}, "INVALID_ARGUMENT", "UNKNOWN_PURPOSE"),
        ("late", {}, "PERMISSION_DENIED", "PERMIT_EXPIRED"),
        ("early", {}, "PERMISSION_DENIED", "PERMIT_NOT_YET_VALID"),
        ("gateway", {"reference": ""}, "FAILED_PRECONDITION", "CONSENT_REQUIRED"),
        (
            "gateway",
            {"given_at": now + dt.timedelta(hours=1)},
            "FAILED_PRECONDITION",
            "CONSENT_REQUIRED",
        ),
        (
            "gateway",
            {"given_at": now - dt.timedelta(days=3)},
            "FAILED_PRECONDITION",
            "CONSENT_REQUIRED",
        ),
        ("gateway", {"reference": "x" * 300}, "INVALID_ARGUMENT", "INVALID_REQUEST"),
    ]
    for name, kwargs, code, reason in cases:
        before = len(deployment.audit())
        with deployment.client(name) as c:
            failure = refused(lambda c=c, kw=kwargs: verify(c, **kw))
        assert (failure.code, failure.reason) == (code, reason), (name, kwargs, failure)
        records = deployment.audit()
        assert len(records) == before + 1
        assert (records[-1]["outcome"], records[-1]["reason"]) == ("REFUSED", reason)


def test_consent_problems_are_named(deployment: Deployment) -> None:
    with deployment.client("gateway") as gw:
        stale = refused(lambda: verify(gw, given_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)))
        empty = refused(lambda: verify(gw, reference=""))
    assert stale.metadata["problem"] == "expired"
    assert empty.metadata["problem"] == "missing_reference"


def test_agency_may_not_use_the_registry_or_admin(deployment: Deployment) -> None:
    with deployment.client("gateway") as gw:
        version = deployment.server.service.store.active_template(CITIZEN_A).version
        failure = refused(lambda: gw.enroll(CITIZEN_A, photo("biden.jpg")))
        assert (failure.code, failure.reason) == ("PERMISSION_DENIED", "OPERATION_NOT_PERMITTED")
        assert deployment.server.service.store.active_template(CITIZEN_A).version == version
        assert refused(lambda: gw.delete_enrollment(CITIZEN_A)).reason == "OPERATION_NOT_PERMITTED"
        assert refused(lambda: gw.get_citizen(CITIZEN_A)).reason == "OPERATION_NOT_PERMITTED"
        # the 1:N search (issue 9) is for the authority's operators only
        search = refused(lambda: gw.search_duplicates(k=3, image=photo("obama.jpg")))
        assert (search.code, search.reason) == ("PERMISSION_DENIED", "OPERATION_NOT_PERMITTED")
    with channel(deployment.server.address, deployment.tls("gateway")) as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.GrantPermit(
                admin_pb2.GrantPermitRequest(agency_code="BANK-A", purposes=["AUTH"]), timeout=10
            )
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_info(__import__("grpc_status").rpc_status.from_call(info.value)).reason == (
        "OPERATION_NOT_PERMITTED"
    )
    assert all("AUTH" not in p.purposes for p in deployment.admin.store.permits_of("BANK-A"))


def test_suspension_applies_to_the_next_call_on_an_open_channel(deployment: Deployment) -> None:
    permit = deployment.admin.store.permits_of("GOV-B")[0]
    with deployment.client("gov") as gov:  # one channel throughout
        assert verify(gov, purpose="GOV_SERVICE").similarity > 0.5
        deployment.admin.change_permit(OPERATOR, permit.id, "suspend", "audit overdue")
        failure = refused(lambda: verify(gov, purpose="GOV_SERVICE"))
        assert (failure.code, failure.reason) == ("PERMISSION_DENIED", "PERMIT_SUSPENDED")
        assert "audit overdue" in failure.message
        deployment.admin.change_permit(OPERATOR, permit.id, "resume", "report received")
        assert verify(gov, purpose="GOV_SERVICE").similarity > 0.5
        deployment.admin.change_permit(OPERATOR, permit.id, "revoke", "breach of clause 8")
        assert refused(lambda: verify(gov, purpose="GOV_SERVICE")).reason == "PERMIT_REVOKED"
    with pytest.raises(Exception, match="revoked") as info:
        deployment.admin.change_permit(OPERATOR, permit.id, "resume", "no")
    assert info.value.code.value == "INVALID_TRANSITION"  # type: ignore[attr-defined]


def test_admin_service_over_mtls(deployment: Deployment) -> None:
    with channel(deployment.server.address, deployment.tls("operator")) as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        agency = stub.AddAgency(
            admin_pb2.AddAgencyRequest(
                agency=admin_pb2.Agency(
                    code="INS-C",
                    kind=admin_pb2.AGENCY_KIND_PRIVATE,
                    name="Insurer C",
                    registration_number="0105555000009",
                    mission="insurance claims",
                    supervisors=[admin_pb2.Supervisor(name="Malee", contact="malee@c.example")],
                )
            ),
            timeout=10,
        )
        assert agency.code == "INS-C"
        request = admin_pb2.GrantPermitRequest(agency_code="INS-C", purposes=["AUTH"])
        request.valid_until.FromDatetime(NOW + dt.timedelta(days=30))
        permit = stub.GrantPermit(request, timeout=10)
        assert permit.status == admin_pb2.PERMIT_STATUS_ACTIVE
        with pytest.raises(grpc.RpcError) as dup:
            stub.AddAgency(admin_pb2.AddAgencyRequest(agency=agency), timeout=10)
        assert dup.value.code() is grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as bad:
            stub.RegisterSystem(
                admin_pb2.RegisterSystemRequest(
                    agency_code="INS-C", name="gw", certificate_pem="-----BEGIN nonsense"
                ),
                timeout=10,
            )
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as foreign:
            stub.RegisterSystem(
                admin_pb2.RegisterSystemRequest(
                    agency_code="INS-C",
                    name="gw",
                    certificate_pem=deployment.certs["foreign"].cert_pem.decode(),
                ),
                timeout=10,
            )
        assert foreign.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = stub.GetAgency(admin_pb2.GetAgencyRequest(code="INS-C"), timeout=10)
        assert [p.purposes for p in details.permits] == [["AUTH"]]
        assert not details.systems  # the refused registrations left nothing behind
        stub.SetConditions(
            admin_pb2.SetConditionsRequest(version="2026-11-27", summary="amended fees"), timeout=10
        )
    with deployment.client("gateway") as gw:
        verify(gw)
    assert deployment.audit()[-1]["conditions"] == "2026-11-27"
    actions = [r["operation"] for r in deployment.audit() if r["system"] == "operator/operator"]
    assert {
        "Admin/AddAgency",
        "Admin/GrantPermit",
        "Admin/RegisterSystem",
        "Admin/SetConditions",
    } <= set(actions)


def test_audit_chain_verifies_and_export_is_per_agency(deployment: Deployment) -> None:
    key = load_or_create_key(deployment.data / KEYS_DIR, "audit-chain")
    check = verify_chain(deployment.audit_path, key)
    assert check.ok, check
    assert check.records == len(deployment.audit())
    from fvs.audit.trail import export

    text = export(read_records(deployment.audit_path), "BANK-A", None, None, "jsonl", key=key)
    bank = [json.loads(x) for x in text.splitlines()]
    assert bank and {r["agency"] for r in bank} == {"BANK-A"}
    assert len(bank) == sum(1 for r in deployment.audit() if r["agency"] == "BANK-A")


def test_unwritable_audit_fails_closed(deployment: Deployment) -> None:
    path = deployment.audit_path
    aside = path.with_suffix(".aside")
    path.rename(aside)
    try:
        with deployment.client("gateway") as gw:
            failure = refused(lambda: verify(gw))
        assert (failure.code, failure.reason) == ("UNAVAILABLE", "AUDIT_UNAVAILABLE")
        store = deployment.server.service.store
        version = store.active_template(CITIZEN_A).version
        with deployment.client("operator") as op:
            failure = refused(lambda: op.enroll(CITIZEN_A, photo("obama2.jpg")))
        assert failure.reason == "AUDIT_UNAVAILABLE"
        assert store.active_template(CITIZEN_A).version == version  # nothing changed unaudited
        assert not path.exists()
    finally:
        aside.rename(path)
    with deployment.client("gateway") as gw:
        assert verify(gw).similarity > 0.5
    key = load_or_create_key(deployment.data / KEYS_DIR, "audit-chain")
    assert verify_chain(path, key).ok
