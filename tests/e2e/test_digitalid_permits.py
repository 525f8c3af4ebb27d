"""Permits per service (FVS, DIGITAL_ID) and the guessing limit per agency, over mutual TLS."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fvs.access.admin import AdminService
from fvs.access.gate import Gate
from fvs.access.model import Caller, Role
from fvs.access.policy import ConsentRules
from fvs.api.client import CallFailedError, ClientTls, FvsClient
from fvs.audit.log import read_records
from fvs.config import Settings
from fvs.digitalid.permits import set_permit_services
from fvs.digitalid.store import SqliteIdCardStore
from fvs.digitalid.synthetic import seed_cards
from fvs.domain import Citizen
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.pipeline import FacePipeline
from fvs.pki import Issued, init_pki
from fvs.store.sqlite import SqliteStore
from fvs.store.synthetic import synthetic_citizens
from tests.conftest import photo
from tests.e2e.conftest import ServerThread

OPERATOR = Caller(local_operator="test-operator")
AGENCIES = {"BANK-F": None, "BANK-D": ["DIGITAL_ID"], "BANK-K": ["FVS", "DIGITAL_ID"]}


@dataclass
class Deployment:
    server: ServerThread
    data: Path
    ca_pem: bytes
    certs: dict[str, Issued]
    people: list[Citizen]
    permits: dict[str, int]

    def client(self, agency: str) -> FvsClient:
        issued = self.certs[agency]
        assert issued.key_pem is not None
        tls = ClientTls(self.ca_pem, issued.cert_pem, issued.key_pem)
        return FvsClient(self.server.address, timeout_s=20, tls=tls)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    settings_factory: Callable[..., Settings],
    pipeline: FacePipeline,
) -> Iterator[Deployment]:
    pki = tmp_path_factory.mktemp("pki")
    settings = settings_factory()
    settings.access.tls_dir = pki / "server"  # the server's folder, without the CA key
    settings.digitalid.max_no_match = 2
    data = settings.store.data_dir
    people = list(synthetic_citizens(20, 5))
    store = SqliteStore(data)
    store.add_citizens(people)
    store.close()
    seed_cards(data, people, 5)
    ca, _ = init_pki(pki, "Test Authority", [])
    admin = AdminService(Gate.open(data, ConsentRules()), ca.pem)
    certs = {code: ca.issue("gw", code) for code in AGENCIES}
    certs["operator"] = ca.issue("fvs-admin", "FVS")
    permits: dict[str, int] = {}
    cards = SqliteIdCardStore(data)
    for i, (code, services) in enumerate(AGENCIES.items()):
        admin.add_agency(OPERATOR, code, "PRIVATE", code, f"010555500000{i}", "banking", [])
        permit = admin.grant_permit(
            OPERATOR, code, ["KYC"], None, dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        )
        permits[code] = permit.id
        admin.register_system(OPERATOR, code, "gw", cert_pem=certs[code].cert_pem)
        if services and code == "BANK-K":
            set_permit_services(admin, OPERATOR, cards, permit.id, services)
    admin.register_system(
        OPERATOR,
        "",
        "operator",
        cert_pem=certs["operator"].cert_pem,
        roles=frozenset({Role.ADMIN, Role.REGISTRY}),
    )
    with pytest.raises(FvsError) as caught:
        set_permit_services(admin, OPERATOR, cards, permits["BANK-D"], ["FACE"])
    assert caught.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(FvsError) as caught:
        set_permit_services(admin, OPERATOR, cards, 999, ["FVS"])
    assert caught.value.code is ErrorCode.PERMIT_NOT_FOUND
    cards.close()
    admin.gate.close()
    # BANK-D through the command line
    done = subprocess.run(
        [sys.executable, "-m", "fvs", "admin", "permit", "services", "--data-dir", str(data),
         "--permit", str(permits["BANK-D"]), "--service", "DIGITAL_ID"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"permit {permits['BANK-D']} covers DIGITAL_ID" in done.stdout
    server = ServerThread(settings, lambda: pipeline)
    server.loaded.result(timeout=60)
    dep = Deployment(server, data, ca.pem, certs, people, permits)
    with dep.client("operator") as operator:
        operator.enroll(people[0].citizen_id, photo("obama.jpg"))
    yield dep
    server.stop()
    server.loop.close()  # ServerThread.stop leaves it open


def _refused(call: Callable[[], object]) -> CallFailedError:
    with pytest.raises(CallFailedError) as caught:
        call()
    return caught.value


def test_each_service_needs_a_permit_that_covers_it(deployment: Deployment) -> None:
    person = deployment.people[0]
    claim = {"first_name_en": person.first_name_en}

    def face(agency: str, **kw: object) -> object:
        with deployment.client(agency) as c:
            return c.verify(person.citizen_id, photo("obama2.jpg"), "KYC", "C-1", **kw)  # type: ignore[arg-type]

    def attrs(agency: str) -> object:
        with deployment.client(agency) as c:
            return c.verify_attributes(person.citizen_id, claim, "KYC", "C-1")

    # BANK-F: a permit granted without services covers FVS only
    assert face("BANK-F").match_score > 60  # type: ignore[attr-defined]
    for call in (lambda: attrs("BANK-F"), lambda: face("BANK-F", claimed=claim)):
        error = _refused(call)
        assert (error.code, error.reason) == ("PERMISSION_DENIED", "SERVICE_NOT_PERMITTED")
        assert error.metadata["service"] == "DIGITAL_ID"
        assert error.metadata["permit"] == str(deployment.permits["BANK-F"])
    # BANK-D: Digital ID only
    assert attrs("BANK-D").all_match  # type: ignore[attr-defined]
    for call in (lambda: face("BANK-D"), lambda: face("BANK-D", claimed=claim)):
        error = _refused(call)
        assert (error.code, error.reason) == ("PERMISSION_DENIED", "SERVICE_NOT_PERMITTED")
        assert error.metadata["service"] == "FVS"
    # BANK-K: both, so the combined KYC call too
    kyc = face("BANK-K", claimed=claim)
    assert kyc.attributes.all_match and kyc.match_score > 60  # type: ignore[attr-defined]
    records = list(read_records(deployment.data / "audit" / "audit.jsonl"))
    refused = [r for r in records if r["reason"] == "SERVICE_NOT_PERMITTED"]
    assert {r["agency"] for r in refused} == {"BANK-F", "BANK-D"}
    assert any(r["operation"] == "Admin/SetPermitServices" for r in records)
    kyc = [r for r in records if r["operation"] == "Verify/KYC"]
    assert {(r["agency"], r["outcome"]) for r in kyc} == {
        ("BANK-F", "REFUSED"),
        ("BANK-D", "REFUSED"),
        ("BANK-K", "OK"),
    }
    kyc_record = next(r for r in kyc if r["outcome"] == "OK")
    assert kyc_record["permit"] == deployment.permits["BANK-K"]
    assert kyc_record["attributes"] == {"first_name_en": "MATCH"}


def test_agencies_never_see_the_card(deployment: Deployment) -> None:
    with deployment.client("BANK-K") as k:
        error = _refused(lambda: k.get_citizen(deployment.people[0].citizen_id))
    assert (error.code, error.reason) == ("PERMISSION_DENIED", "OPERATION_NOT_PERMITTED")
    with deployment.client("operator") as operator:
        shown = operator.get_citizen(deployment.people[0].citizen_id)
    assert len(shown.id_card.laser_code) == 14


def test_guessing_limit_is_per_agency(deployment: Deployment) -> None:
    person = deployment.people[1]
    with deployment.client("BANK-D") as d, deployment.client("BANK-K") as k:
        for wrong in ("A", "B"):
            answer = d.verify_attributes(person.citizen_id, {"last_name_en": wrong}, "KYC", "C")
            assert not answer.all_match
        error = _refused(
            lambda: d.verify_attributes(
                person.citizen_id, {"last_name_en": person.last_name_en}, "KYC", "C"
            )
        )
        assert (error.code, error.reason) == ("RESOURCE_EXHAUSTED", "ATTRIBUTE_GUESSING")
        # another agency asking about the same citizen is not affected
        answer = k.verify_attributes(
            person.citizen_id, {"last_name_en": person.last_name_en}, "KYC", "C"
        )
        assert answer.all_match
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    usage = subprocess.run(
        [sys.executable, "-m", "fvs", "admin", "usage", "--data-dir", str(deployment.data),
         "--agency", "BANK-D", "--month", month],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert usage.returncode == 0, usage.stderr
    assert "VerifyAttributes" in usage.stdout
    assert "refused for guessing (ATTRIBUTE_GUESSING): 1 " in usage.stdout
