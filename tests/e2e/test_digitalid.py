"""DigitalId/VerifyAttributes over a real server (--insecure development system): each
comparison rule, the refusals, the guessing limit (audited) and the no-disclosure property."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from fvs.api.client import CallFailedError, FvsClient
from fvs.api.errors import error_info
from fvs.api.v1 import (
    attributes_pb2,
    digitalid_pb2,
    digitalid_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from fvs.audit.log import read_records
from fvs.config import Settings
from fvs.digitalid.match import format_laser_code
from fvs.digitalid.model import CardFacts, CardStatus, CardStatusReason
from fvs.digitalid.synthetic import seed_cards
from fvs.domain import Citizen
from fvs.pipeline.pipeline import FacePipeline
from fvs.store.sqlite import SqliteStore
from fvs.store.synthetic import synthetic_citizens
from tests.conftest import UNKNOWN_CITIZEN, photo
from tests.e2e.conftest import ServerThread

COUNT = 600  # enough rare cases (1.5 % with an unknown birth month) for every test
SEED = 11
LIMIT = 4
R = digitalid_pb2
A = attributes_pb2


class Registry:
    def __init__(self, server: ServerThread, people: list[Citizen]) -> None:
        self.server = server
        self.people = people
        self.cards = server.parts.digital_id.cards
        self.channel = grpc.insecure_channel(server.address)
        self.stub = digitalid_pb2_grpc.DigitalIdStub(self.channel)
        self.used: set[str] = set()
        self.answers: list[bytes] = []  # every serialized answer and error, for the leak test

    def card(self, person: Citizen) -> CardFacts:
        card = self.cards.card(person.citizen_id)
        assert card is not None
        return card

    def fresh(self, where: Callable[[Citizen, CardFacts], bool] = lambda p, c: True) -> Citizen:
        """A citizen no earlier test asked about (the guessing counter starts at zero)."""
        for person in self.people:
            if person.citizen_id not in self.used and where(person, self.card(person)):
                self.used.add(person.citizen_id)
                return person
        raise AssertionError("no such citizen in the seeded registry")

    def ask(
        self, citizen_id: str, consent: bool = True, **claimed: str
    ) -> R.VerifyAttributesResponse:
        request = R.VerifyAttributesRequest(
            citizen_id=citizen_id,
            claimed=A.Attributes(**claimed),
            purpose="KYC",
            request_id="digid-test",
        )
        if consent:
            request.consent.reference = "CONSENT-DIGID-1"
            request.consent.given_at.FromDatetime(dt.datetime.now(dt.UTC))
        try:
            response: R.VerifyAttributesResponse = self.stub.VerifyAttributes(request, timeout=30)
        except grpc.RpcError as exc:
            status = rpc_status.from_call(exc)  # type: ignore[arg-type]
            self.answers.append(exc.details().encode())
            self.answers.append(status.SerializeToString() if status else b"")
            self.answers.append(repr(exc.trailing_metadata()).encode())  # type: ignore[attr-defined]
            raise
        self.answers.append(response.SerializeToString())
        self.answers.append(str(response).encode())
        return response

    def refusal(
        self, citizen_id: str, **claimed: Any
    ) -> tuple[grpc.StatusCode, str, dict[str, str]]:
        with pytest.raises(grpc.RpcError) as caught:
            self.ask(citizen_id, **claimed)
        status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
        info = error_info(status)
        assert info is not None
        return caught.value.code(), info.reason, dict(info.metadata)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def registry(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> Iterator[Registry]:
    settings = settings_factory()
    settings.digitalid.max_no_match = LIMIT
    people = list(synthetic_citizens(COUNT, SEED))
    store = SqliteStore(settings.store.data_dir)
    store.add_citizens(people)
    store.close()
    seed_cards(settings.store.data_dir, people, SEED)
    running = ServerThread(settings, lambda: pipeline)
    running.loaded.result(timeout=60)
    reg = Registry(running, people)
    yield reg
    reg.channel.close()
    running.stop()
    running.loop.close()  # ServerThread.stop leaves it open


def _results(response: R.VerifyAttributesResponse) -> dict[str, str]:
    return {
        f.name: A.AttributeResult.Name(getattr(response.results, f.name))
        for f in A.AttributeResults.DESCRIPTOR.fields
    }


def test_all_attributes_match(registry: Registry) -> None:
    person = registry.fresh(lambda p, c: c.birth_date.day != 0 and c.status is CardStatus.ACTIVE)
    card = registry.card(person)
    response = registry.ask(
        person.citizen_id,
        first_name_th=person.first_name_th,
        last_name_th=person.last_name_th,
        first_name_en=person.first_name_en,
        last_name_en=person.last_name_en,
        birth_date=str(card.birth_date),
        laser_code=format_laser_code(card.laser_code),
        province=card.province,
        district=card.district,
    )
    assert set(_results(response).values()) == {"MATCH"}
    assert response.all_match
    assert response.request_id == "digid-test"


def _full_birth(p: Citizen, c: CardFacts) -> bool:
    return c.birth_date.day != 0


# (attribute, how to write the claim from the record, expected)
RULES: list[tuple[str, Callable[[Citizen, CardFacts], str], str]] = [
    ("first_name_th", lambda p, c: f"  {p.first_name_th}  ", "MATCH"),
    ("first_name_th", lambda p, c: p.first_name_th[:-1], "NO_MATCH"),
    ("last_name_th", lambda p, c: p.last_name_th + " ", "MATCH"),
    ("first_name_en", lambda p, c: p.first_name_en.upper(), "MATCH"),
    ("last_name_en", lambda p, c: f" {p.last_name_en.lower()} ", "MATCH"),
    ("last_name_en", lambda p, c: p.last_name_en + "x", "NO_MATCH"),
    ("birth_date", lambda p, c: str(c.birth_date).replace("-", ""), "MATCH"),
    (
        "birth_date",
        lambda p, c: f"{c.birth_date.year + 543}-{c.birth_date.month:02d}-{c.birth_date.day:02d}",
        "MATCH",
    ),
    (
        "birth_date",
        lambda p, c: f"{c.birth_date.year + 4}{str(c.birth_date)[4:]}",
        "NO_MATCH",
    ),  # +4: a 29 February stays a day
    ("laser_code", lambda p, c: c.laser_code, "MATCH"),
    ("laser_code", lambda p, c: format_laser_code(c.laser_code).lower(), "MATCH"),
    ("laser_code", lambda p, c: c.laser_code[:-1] + str(9 - int(c.laser_code[-1])), "NO_MATCH"),
    ("province", lambda p, c: c.province_en.upper(), "MATCH"),
    ("district", lambda p, c: c.district_en.lower(), "MATCH"),
    ("district", lambda p, c: "ไม่มีอำเภอนี้", "NO_MATCH"),
]


@pytest.mark.parametrize(("field", "claim", "expected"), RULES)
def test_comparison_rule(
    registry: Registry,
    field: str,
    claim: Callable[[Citizen, CardFacts], str],
    expected: str,
) -> None:
    person = registry.fresh(_full_birth)
    response = registry.ask(person.citizen_id, **{field: claim(person, registry.card(person))})
    results = _results(response)
    assert results[field] == expected
    assert {v for k, v in results.items() if k != field} == {"NOT_PROVIDED"}
    assert response.all_match is (expected == "MATCH")


@pytest.mark.parametrize(
    ("unknown_month", "claim", "expected"),
    [
        (False, lambda y, m: f"{y}-{m:02d}-00", "MATCH"),
        (False, lambda y, m: f"{y + 543}{m:02d}17", "MATCH"),  # any day matches an unknown day
        (False, lambda y, m: f"{y}-{m % 12 + 1:02d}-00", "NO_MATCH"),  # the month is known
        (True, lambda y, m: f"{y}-00-00", "MATCH"),
        (True, lambda y, m: f"{y}-07-04", "MATCH"),
        (True, lambda y, m: f"{y - 1}-00-00", "NO_MATCH"),
    ],
)
def test_registry_birth_dates_with_unknown_parts(
    registry: Registry, unknown_month: bool, claim: Callable[[int, int], str], expected: str
) -> None:
    person = registry.fresh(
        lambda p, c: c.birth_date.day == 0 and (c.birth_date.month == 0) is unknown_month
    )
    registered = registry.card(person).birth_date
    response = registry.ask(
        person.citizen_id, birth_date=claim(registered.year, registered.month or 1)
    )
    assert _results(response)["birth_date"] == expected


def test_card_status_and_alive(registry: Registry) -> None:
    revoked = registry.fresh(lambda p, c: c.status is CardStatus.REVOKED and c.alive)
    response = registry.ask(revoked.citizen_id, first_name_en=revoked.first_name_en)
    assert response.card_status == A.ID_CARD_REVOKED
    assert response.card_status_reason in {A.ID_CARD_LOST, A.ID_CARD_STOLEN, A.ID_CARD_DAMAGED}
    assert response.alive
    dead = registry.fresh(lambda p, c: not c.alive)
    response = registry.ask(dead.citizen_id, first_name_en=dead.first_name_en)
    assert not response.alive
    assert response.card_status == A.ID_CARD_REVOKED
    assert response.card_status_reason == A.ID_CARD_HOLDER_DECEASED
    expired = registry.fresh(lambda p, c: c.status is CardStatus.EXPIRED)
    response = registry.ask(expired.citizen_id, last_name_en=expired.last_name_en)
    assert response.card_status == A.ID_CARD_EXPIRED
    assert response.card_status_reason == A.ID_CARD_STATUS_REASON_UNSPECIFIED
    active = registry.fresh(
        lambda p, c: (
            c.status_on(dt.date.today()) is CardStatus.ACTIVE
            and c.status_reason is CardStatusReason.NONE
        )
    )
    response = registry.ask(active.citizen_id, last_name_en=active.last_name_en)
    assert response.card_status == A.ID_CARD_ACTIVE and response.alive


@pytest.mark.parametrize(
    ("claimed", "reason", "metadata"),
    [
        ({}, "INVALID_REQUEST", {"field": "claimed", "problem": "empty"}),
        ({"first_name_th": "ก" * 101}, "INVALID_ATTRIBUTE", {"problem": "too_long"}),
        ({"last_name_en": "Jai\x07dee"}, "INVALID_ATTRIBUTE", {"problem": "control_character"}),
        ({"birth_date": "2528-02-30"}, "INVALID_ATTRIBUTE", {"problem": "impossible_date"}),
        ({"birth_date": "14/03/1985"}, "INVALID_ATTRIBUTE", {"problem": "format"}),
        ({"laser_code": "JT0-12345-6789"}, "INVALID_ATTRIBUTE", {"problem": "format"}),
        ({"province": "\t"}, "INVALID_ATTRIBUTE", {"problem": "control_character"}),
    ],
)
def test_malformed_claims(
    registry: Registry, claimed: dict[str, str], reason: str, metadata: dict[str, str]
) -> None:
    person = registry.fresh()
    code, got_reason, got_metadata = registry.refusal(person.citizen_id, **claimed)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert got_reason == reason
    assert metadata.items() <= got_metadata.items()
    if claimed:
        assert got_metadata["field"] == f"claimed.{next(iter(claimed))}"


def test_unknown_citizen_bad_id_and_missing_consent(registry: Registry) -> None:
    code, reason, _ = registry.refusal(UNKNOWN_CITIZEN, first_name_en="Somchai")
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "CITIZEN_NOT_FOUND")
    code, reason, _ = registry.refusal("1234567890123", first_name_en="Somchai")
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CITIZEN_ID")
    person = registry.fresh()
    code, reason, _ = registry.refusal(person.citizen_id, consent=False, first_name_en="X")
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONSENT_REQUIRED")


def test_guessing_limit_refuses_and_is_audited(registry: Registry) -> None:
    person = registry.fresh(_full_birth)
    card = registry.card(person)
    guesses = [f"{card.birth_date.year}-01-{d:02d}" for d in range(1, 29)]
    guesses = [g for g in guesses if g != str(card.birth_date)][:LIMIT]
    for guess in guesses:
        assert _results(registry.ask(person.citizen_id, birth_date=guess))["birth_date"] == (
            "NO_MATCH"
        )
    # past the limit even the right answer is refused: nothing more is learnt
    code, reason, metadata = registry.refusal(person.citizen_id, birth_date=str(card.birth_date))
    assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ATTRIBUTE_GUESSING")
    assert metadata["limit"] == str(LIMIT)
    assert 0 < int(metadata["retry_after_s"]) <= 24 * 3600
    code, reason, _ = registry.refusal(person.citizen_id, first_name_en=person.first_name_en)
    assert reason == "ATTRIBUTE_GUESSING"
    # other citizens are still answered
    other = registry.fresh()
    assert registry.ask(other.citizen_id, first_name_en=other.first_name_en).all_match
    data_dir = registry.server.settings.store.data_dir
    records = [
        r
        for r in read_records(data_dir / "audit" / "audit.jsonl")
        if r["operation"] == "VerifyAttributes"
    ]
    refused = [r for r in records if r["reason"] == "ATTRIBUTE_GUESSING"]
    assert len(refused) >= 2 and all(r["outcome"] == "REFUSED" for r in refused)
    answered = [r for r in records if r["outcome"] == "OK"]
    assert any(r.get("attributes") == {"birth_date": "NO_MATCH"} for r in answered)
    assert all(r["purpose"] == "KYC" and r["agency"] == "DEV" for r in records)


def test_cli_verify_attributes(registry: Registry) -> None:
    person = registry.fresh(_full_birth)
    card = registry.card(person)
    base = [
        sys.executable, "-m", "fvs", "--log-level", "WARNING", "verify-attributes",
        "--server", registry.server.address, "--citizen-id", person.citizen_id,
        "--purpose", "KYC", "--consent-ref", "CONSENT-CLI-DIGID",
    ]  # fmt: skip
    ok = subprocess.run(
        [*base, "--first-name-th", person.first_name_th, "--birth-date",
         f"{card.birth_date.year + 543}{str(card.birth_date)[5:].replace('-', '')}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "first_name_th  MATCH" in ok.stdout and "birth_date     MATCH" in ok.stdout
    assert person.first_name_th in " ".join(ok.args)  # sent, but never echoed back:
    assert person.first_name_th not in ok.stdout
    wrong = subprocess.run(
        [*base, "--last-name-en", "Nobody", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert wrong.returncode == 1
    assert json.loads(wrong.stdout)["results"]["last_name_en"] == "NO_MATCH"
    bad = subprocess.run(
        [*base, "--laser-code", "JT0-1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1
    assert "INVALID_ATTRIBUTE" in bad.stderr


def _audit(registry: Registry) -> list[dict[str, Any]]:
    return list(read_records(registry.server.settings.store.data_dir / "audit" / "audit.jsonl"))


def test_kyc_call_checks_face_and_attributes_once(registry: Registry) -> None:
    person = registry.fresh(_full_birth)
    card = registry.card(person)
    with FvsClient(registry.server.address) as client:
        client.enroll(person.citizen_id, photo("obama.jpg"))
        before = len(_audit(registry))
        response = client.verify(
            person.citizen_id,
            photo("obama2.jpg"),
            "KYC",
            "CONSENT-KYC-1",
            request_id="kyc-1",
            claimed={
                "first_name_en": person.first_name_en.lower(),
                "birth_date": str(card.birth_date),
                "laser_code": format_laser_code(card.laser_code),
                "last_name_th": "ผิด",
            },
        )
        registry.answers += [response.SerializeToString(), str(response).encode()]
        assert response.match_score > 60  # the same person, another photo
        assert response.HasField("attributes")
        results = {k: v for k, v in _results(response.attributes).items() if v != "NOT_PROVIDED"}
        assert results == {
            "first_name_en": "MATCH",
            "birth_date": "MATCH",
            "laser_code": "MATCH",
            "last_name_th": "NO_MATCH",
        }
        assert not response.attributes.all_match
        assert response.attributes.card_status != A.ID_CARD_STATUS_UNSPECIFIED
        records = _audit(registry)[before:]
        assert len(records) == 1  # authorised and audited once for face and attributes
        record = records[0]
        assert record["operation"] == "Verify/KYC" and record["outcome"] == "OK"
        assert record["request_id"] == "kyc-1" and record["score"] == round(response.match_score, 4)
        assert record["attributes"]["last_name_th"] == "NO_MATCH"
        # without claimed attributes Verify answers as before, with no attribute part
        plain = client.verify(person.citizen_id, photo("obama2.jpg"), "KYC", "CONSENT-KYC-2")
        assert not plain.HasField("attributes")
        # a malformed attribute refuses the whole call, before the face is compared
        with pytest.raises(CallFailedError) as caught:
            client.verify(
                person.citizen_id,
                photo("obama2.jpg"),
                "KYC",
                "CONSENT-KYC-3",
                claimed={"birth_date": "2528-13-01"},
            )
        assert caught.value.reason == "INVALID_ATTRIBUTE"
        assert caught.value.metadata["field"] == "claimed.birth_date"
        registry.answers.append(str(caught.value).encode())
        with pytest.raises(CallFailedError) as caught:
            client.verify(person.citizen_id, photo("obama2.jpg"), "KYC", "C-4", claimed={})
        assert (caught.value.code, caught.value.reason) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    # a batch item with claimed attributes is refused on its own
    batch = verification_pb2.VerifyBatchRequest(
        items=[
            verification_pb2.VerifyRequest(
                citizen_id=person.citizen_id, claimed=A.Attributes(province="x")
            )
        ]
    )
    answer = verification_pb2_grpc.FaceVerificationStub(registry.channel).VerifyBatch(batch)
    assert answer.results[0].error.reason == "INVALID_REQUEST"
    assert answer.results[0].error.metadata["field"] == "items.claimed"


def test_kyc_call_counts_towards_the_guessing_limit(registry: Registry) -> None:
    person = registry.fresh()
    with FvsClient(registry.server.address) as client:
        client.enroll(person.citizen_id, photo("biden.jpg"))
        for i in range(LIMIT):
            response = client.verify(
                person.citizen_id, photo("biden2.jpg"), "KYC", "C", claimed={"province": f"P{i}"}
            )
            assert response.attributes.results.province == A.NO_MATCH
        with pytest.raises(CallFailedError) as caught:
            client.verify(
                person.citizen_id, photo("biden2.jpg"), "KYC", "C", claimed={"province": "P"}
            )
        assert (caught.value.code, caught.value.reason) == (
            "RESOURCE_EXHAUSTED",
            "ATTRIBUTE_GUESSING",
        )
        # the face alone is still answered
        assert client.verify(person.citizen_id, photo("biden2.jpg"), "KYC", "C").match_score > 0


def test_nothing_of_the_record_is_disclosed(registry: Registry) -> None:
    """Every answer and error this module's tests received (and a fresh sweep of right and
    wrong claims) holds no value of any record asked about."""
    person = registry.fresh(_full_birth)
    claims = [
        {"first_name_th": person.first_name_th + "ก"},
        {"last_name_en": "Wrong"},
        {"birth_date": "1901-01-01"},
        {"laser_code": "AA0-0000000-00"},
        {"province": "Narnia", "district": "x"},
        {"first_name_en": person.first_name_en, "birth_date": "19010101"},
        {"birth_date": "1901-02-30"},
    ]
    for claim in claims:
        with contextlib.suppress(grpc.RpcError):
            registry.ask(person.citizen_id, **claim)
    blob = b"\n".join(registry.answers).decode("utf-8", "replace")
    assert len(registry.answers) > 40
    for citizen_id in registry.used:
        asked = next(p for p in registry.people if p.citizen_id == citizen_id)
        facts = registry.card(asked)
        values = {
            asked.first_name_th,
            asked.last_name_th,
            asked.first_name_en,
            asked.last_name_en,
            asked.citizen_id,
            asked.birth_date.isoformat(),
            str(facts.birth_date),
            str(facts.birth_date).replace("-", ""),
            facts.laser_code,
            format_laser_code(facts.laser_code),
            facts.issued_on.isoformat(),
            facts.expires_on.isoformat(),
            facts.house_no,
            facts.province,
            facts.district,
            facts.province_en,
            facts.district_en,
        }
        if facts.deceased_on:
            values.add(facts.deceased_on.isoformat())
        leaked = {v for v in values if v and (v in blob or v.lower() in blob.lower())}
        assert not leaked, f"record values in answers: {leaked}"


def test_get_citizen_shows_the_card_to_the_registry(registry: Registry) -> None:
    person = registry.fresh(lambda p, c: c.birth_date.day == 0)
    card = registry.card(person)
    with FvsClient(registry.server.address) as client:
        shown = client.get_citizen(person.citizen_id).id_card
    assert shown.laser_code == format_laser_code(card.laser_code)
    assert shown.registered_birth_date == str(card.birth_date)
    assert shown.registered_birth_date.endswith("-00")
    assert shown.expires_on == card.expires_on.isoformat()
    assert shown.house_no == card.house_no and shown.province == card.province
    assert shown.alive is card.alive
