"""Administration of agencies, purposes, permits, systems and conditions (transport-neutral).

Used by the local `fvs admin` CLI and by the fvs.v1.Admin gRPC service; every action goes
through the gate, so it is authorized and audited like any call.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fvs.access.gate import CallFacts, Gate
from fvs.access.model import (
    Agency,
    AgencyKind,
    Authorization,
    Caller,
    Operation,
    Permit,
    PermitStatus,
    Purpose,
    Role,
    Supervisor,
    System,
)
from fvs.audit import trail as audit_trail
from fvs.errors import ErrorCode, FvsError
from fvs.limits import quoted
from fvs.pki import fingerprint, load_certificate, verify_issued_by

T = TypeVar("T")

CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
MAX_TEXT = 500
MAX_RATE_PER_S = 100_000.0
MAX_BURST = 100_000

_ACTIONS = {
    "suspend": PermitStatus.SUSPENDED,
    "resume": PermitStatus.ACTIVE,
    "revoke": PermitStatus.REVOKED,
}


def _check(pattern: re.Pattern[str], value: str, field: str) -> str:
    if not pattern.match(value):
        raise FvsError(
            ErrorCode.INVALID_REQUEST, f"{field} {quoted(value)} is not valid", field=field
        )
    return value


def _text(value: str, field: str, required: bool = True) -> str:
    if (required and not value.strip()) or len(value) > MAX_TEXT or not value.isprintable():
        raise FvsError(
            ErrorCode.INVALID_REQUEST,
            f"{field} must be {'non-empty, ' if required else ''}printable and at most "
            f"{MAX_TEXT} characters",
            field=field,
        )
    return value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AdminService:
    def __init__(self, gate: Gate, ca_pem: bytes | None = None) -> None:
        self.gate = gate
        self.store = gate.policy.store
        self.ca_pem = ca_pem

    def _run(
        self,
        caller: Caller,
        action: str,
        details: dict[str, str],
        fn: Callable[[], T],
        mutates: bool = True,
        problem: FvsError | None = None,
    ) -> T:
        facts = CallFacts(
            Operation.ADMIN, action=action, details=details, mutates=mutates, problem=problem
        )
        return self.gate.run(caller, facts, lambda _auth: fn())

    def audited(
        self, caller: Caller, action: str, details: dict[str, str], fn: Callable[[], T]
    ) -> T:
        """Run ``fn`` as an audited administrative action of ``caller`` (e.g. resolving a
        duplicate case, which lives in the registry)."""
        return self._run(caller, action, details, fn)

    def add_agency(
        self,
        caller: Caller,
        code: str,
        kind: str,
        name: str,
        registration_number: str,
        mission: str,
        supervisors: list[tuple[str, str]],
    ) -> Agency:
        def act() -> Agency:
            try:
                agency_kind = AgencyKind(kind.upper())
            except ValueError:
                raise FvsError(
                    ErrorCode.INVALID_REQUEST, "kind must be STATE or PRIVATE", field="kind"
                ) from None
            agency = Agency(
                code=_check(CODE, code, "code"),
                kind=agency_kind,
                name=_text(name, "name"),
                registration_number=_text(registration_number, "registration_number"),
                mission=_text(mission, "mission"),
                supervisors=tuple(
                    Supervisor(_text(n, "supervisor name"), _text(c, "supervisor contact"))
                    for n, c in supervisors
                ),
            )
            self.store.add_agency(agency, _now())
            return self.store.agency(agency.code)

        agency: Agency = self._run(caller, "AddAgency", {"agency": code, "kind": kind}, act)
        return agency

    def agency(self, caller: Caller, code: str) -> tuple[Agency, list[Permit], list[System]]:
        def act() -> tuple[Agency, list[Permit], list[System]]:
            return (
                self.store.agency(code),
                self.store.permits_of(code),
                self.store.systems_of(code),
            )

        result: tuple[Agency, list[Permit], list[System]] = self._run(
            caller, "GetAgency", {"agency": code}, act, mutates=False
        )
        return result

    def agencies(self, caller: Caller) -> list[Agency]:
        result: list[Agency] = self._run(
            caller, "ListAgencies", {}, self.store.agencies, mutates=False
        )
        return result

    def add_purpose(self, caller: Caller, code: str, description: str) -> Purpose:
        def act() -> Purpose:
            purpose = Purpose(_check(CODE, code, "code"), _text(description, "description"))
            self.store.add_purpose(purpose, _now())
            return purpose

        result: Purpose = self._run(caller, "AddPurpose", {"purpose": code}, act)
        return result

    def grant_permit(
        self,
        caller: Caller,
        agency: str,
        purposes: list[str],
        valid_from: dt.datetime | None,
        valid_until: dt.datetime | None,
        problem: FvsError | None = None,
    ) -> Permit:
        """``problem``: a refusal found while reading the request (e.g. a malformed time)."""

        def act() -> Permit:
            start = valid_from or _now()
            if valid_until is None:
                raise FvsError(
                    ErrorCode.INVALID_REQUEST, "valid_until is required", field="valid_until"
                )
            if not purposes:
                raise FvsError(
                    ErrorCode.INVALID_REQUEST,
                    "a permit needs at least one purpose",
                    field="purposes",
                )
            if valid_until <= start:
                raise FvsError(
                    ErrorCode.INVALID_REQUEST,
                    "valid_until must be after valid_from",
                    field="valid_until",
                )
            return self.store.grant_permit(
                agency,
                sorted(set(purposes)),
                start,
                valid_until,
                self.store.conditions_version(),
                _now(),
            )

        details = {
            "agency": agency,
            "purposes": ",".join(purposes),
            "valid_until": valid_until.isoformat() if valid_until else "",
        }
        result: Permit = self._run(caller, "GrantPermit", details, act, problem=problem)
        return result

    def change_permit(self, caller: Caller, permit_id: int, action: str, reason: str) -> Permit:
        def act() -> Permit:
            if action not in _ACTIONS:
                raise FvsError(
                    ErrorCode.INVALID_REQUEST, "action must be suspend, resume or revoke"
                )
            return self.store.set_permit_status(
                permit_id, _ACTIONS[action], _text(reason, "reason"), _now()
            )

        details = {"permit": str(permit_id), "reason": reason[:MAX_TEXT]}
        result: Permit = self._run(caller, f"{action.capitalize()}Permit", details, act)
        return result

    def set_rate_limit(
        self, caller: Caller, permit_id: int, rate_per_s: float, burst: int
    ) -> Permit:
        """Limit Verify calls under a permit to ``rate_per_s`` a second with ``burst`` at
        once; ``rate_per_s`` 0 removes the limit."""

        def act() -> Permit:
            if not 0 <= rate_per_s <= MAX_RATE_PER_S:  # NaN fails this too
                raise FvsError(
                    ErrorCode.INVALID_REQUEST,
                    f"rate_per_s must be 0 (no limit) to {MAX_RATE_PER_S}",
                    field="rate_per_s",
                )
            if rate_per_s > 0 and not (1 <= burst <= MAX_BURST):
                raise FvsError(
                    ErrorCode.INVALID_REQUEST, f"burst must be 1 to {MAX_BURST}", field="burst"
                )
            return self.store.set_rate_limit(
                permit_id, rate_per_s if rate_per_s > 0 else None, burst
            )

        details = {"permit": str(permit_id), "rate_per_s": f"{rate_per_s:g}", "burst": str(burst)}
        result: Permit = self._run(caller, "SetRateLimit", details, act)
        return result

    def register_system(
        self,
        caller: Caller,
        agency: str,
        name: str,
        *,
        cert_pem: bytes | None = None,
        fingerprint_hex: str = "",
        roles: frozenset[Role] = frozenset({Role.AGENCY}),
        issue: Callable[[], bytes] | None = None,
    ) -> System:
        """Register a client by its certificate (checked against the CA) or its fingerprint.

        ``issue``, when given, makes the certificate (and writes its files): it runs only
        once the name is valid, the agency exists and the name is free, so a refused
        registration leaves nothing behind.
        """

        def act() -> System:
            _check(NAME, name, "name")
            if agency:
                self.store.agency(agency)
            if any(s.name == name for s in self.store.systems_of(agency)):
                raise FvsError(
                    ErrorCode.ALREADY_EXISTS,
                    f"system {agency or 'operator'}/{name} is already registered",
                )
            pem = issue() if issue is not None else cert_pem
            if pem is not None:
                cert = load_certificate(pem)
                if self.ca_pem is not None:
                    verify_issued_by(cert, load_certificate(self.ca_pem))
                fp, subject = fingerprint(cert), cert.subject.rfc4514_string()
            else:
                fp, subject = fingerprint_hex.lower(), ""
                if not FINGERPRINT.match(fp):
                    raise FvsError(
                        ErrorCode.INVALID_CERTIFICATE,
                        "fingerprint must be 64 hex digits (sha256 of the DER certificate)",
                    )
            return self.store.add_system(agency, name, roles, fp, subject, _now())

        details = {
            "agency": agency,
            "name": name,
            "roles": ",".join(sorted(r.value for r in roles)),
        }
        result: System = self._run(caller, "RegisterSystem", details, act)
        return result

    def set_system_active(self, caller: Caller, agency: str, name: str, active: bool) -> None:
        """Disable (or re-enable) a registered system: its certificate is refused from the
        next call on (SYSTEM_DISABLED)."""
        self._run(
            caller,
            "EnableSystem" if active else "DisableSystem",
            {"agency": agency, "name": name},
            lambda: self.store.set_system_active(agency, name, active),
        )

    def set_conditions(self, caller: Caller, version: str, summary: str) -> str:
        def act() -> str:
            self.store.set_conditions(
                _check(CODE, version.upper(), "version"), _text(summary, "summary"), _now()
            )
            return self.store.conditions_version()

        result: str = self._run(caller, "SetConditions", {"version": version}, act)
        return result

    def usage(
        self, caller: Caller, agency: str, month: str
    ) -> Counter[tuple[str, str, str, str, str]]:
        def act() -> Counter[tuple[str, str, str, str, str]]:
            if not re.match(r"^\d{4}-\d{2}$", month):
                raise FvsError(ErrorCode.INVALID_REQUEST, "month must be YYYY-MM", field="month")
            self.store.agency(agency)
            return audit_trail.usage(self.gate.audit.records(agency), agency, month)

        result: Counter[tuple[str, str, str, str, str]] = self._run(
            caller, "Usage", {"agency": agency, "month": month}, act, mutates=False
        )
        return result


def read_ca_pem(pki_dir: Path | None) -> bytes | None:
    """The CA certificate in ``pki_dir`` (or ``pki_dir/ca``, the layout of `fvs pki init`)."""
    if pki_dir is None:
        return None
    for path in (pki_dir / "ca.pem", pki_dir / "ca" / "ca.pem"):
        try:
            return path.read_bytes()
        except OSError:
            continue
    return None


__all__ = ["AdminService", "Authorization", "read_ca_pem"]
