"""Every call through one gate: authorize, run, write the audit record, then answer.

The audit record is durable before the result is returned; if it cannot be written the call
fails closed with AUDIT_UNAVAILABLE, whatever it computed. Refusals are audited too. A call
that changes state (Enroll, DeleteEnrollment, admin changes) first writes a STARTED record:
if that cannot be written nothing is changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fvs.access.model import DEV_SYSTEM, Authorization, Caller, Operation, System
from fvs.access.policy import AccessPolicy, ConsentRules
from fvs.access.store import AccessStore
from fvs.audit.keys import citizen_hash, load_or_create_key
from fvs.audit.trail import AuditTrail, open_trail
from fvs.domain import Consent
from fvs.errors import ErrorCode, FvsError
from fvs.limits import MAX_DETAIL_ITEMS, recordable
from fvs.observability import hooks
from fvs.observability.context import note_agency
from fvs.store.url import StoreLocation, parse_store_url

log = logging.getLogger(__name__)

T = TypeVar("T")

AUDIT_DIR = "audit"
KEYS_DIR = "keys"


@dataclass(frozen=True)
class CallFacts:
    """What the gate and the audit need to know about a call before it runs."""

    operation: Operation
    citizen_id: str = ""
    purpose: str = ""
    consent: Consent | None = None
    request_id: str = ""
    action: str = ""  # for admin operations: which one
    details: dict[str, str] = field(default_factory=dict)
    # A call that changes state gets a STARTED record before it acts, so that a change is
    # never left unaudited even when the closing record cannot be written.
    mutates: bool = False
    # A refusal found by the intake (fvs.intake) before the access rules: the gate records
    # it and raises it without authorising anything.
    problem: FvsError | None = None
    # Services the call needs beyond its operation's own (issue 14: the combined KYC call).
    services: frozenset[str] = frozenset()


Outcome = Callable[[Any], dict[str, Any]]


def _no_fields(_: Any) -> dict[str, Any]:
    return {}


class Gate:
    def __init__(self, policy: AccessPolicy, audit: AuditTrail, citizen_key: bytes) -> None:
        self.policy = policy
        self.audit = audit
        self.citizen_key = citizen_key

    @classmethod
    def open(
        cls,
        data_dir: Path,
        consent: ConsentRules,
        location: StoreLocation | None = None,
        access: AccessStore | None = None,
    ) -> Gate:
        """The audit trail lives where ``location`` says (default: the data directory);
        keys always come from ``data_dir``. ``access``: the access rules' store (default:
        the SQLite file in ``data_dir``)."""
        return cls(
            AccessPolicy(access if access is not None else AccessStore(data_dir), consent),
            open_trail(location or parse_store_url(None, data_dir), data_dir),
            load_or_create_key(data_dir / KEYS_DIR, "citizen-hmac"),
        )

    def close(self) -> None:
        self.audit.close()
        self.policy.store.close()

    def run(
        self,
        caller: Caller,
        facts: CallFacts,
        fn: Callable[[Authorization], T],
        outcome: Outcome = _no_fields,
        flushes: list[Callable[[], None]] | None = None,
    ) -> T:
        """Authorize, run ``fn``, record the outcome. With ``flushes`` the outcome's record
        is written but its flush is appended there, for the caller to run before it answers
        (on another thread: a thread that waits for the disk is moved by the scheduler to the
        core that takes the disk's interrupts, where its next model run was measured 25 %
        slower); a STARTED record is always durable before ``fn`` acts."""
        start = time.perf_counter()
        auth: Authorization | None = None
        try:
            if facts.problem is not None:
                raise facts.problem
            auth = self.policy.authorize(
                caller, facts.operation, facts.purpose, facts.consent, services=facts.services
            )
            hooks.stage("gate", time.perf_counter() - start)
            if facts.mutates:
                self._record(caller, facts, auth, start, "STARTED", "", {})
            result = fn(auth)
        except FvsError as exc:
            self._record(
                caller, facts, auth, start, "REFUSED", exc.code.value, dict(exc.audit), flushes
            )
            raise
        except Exception:
            self._record(caller, facts, auth, start, "ERROR", ErrorCode.INTERNAL.value, {}, flushes)
            raise
        self._record(caller, facts, auth, start, "OK", "", outcome(result), flushes)
        return result

    def refuse(self, caller: Caller, facts: CallFacts, error: FvsError) -> None:
        """Record a call refused before it reached the gate proper (e.g. OVERLOADED)."""
        self.audit.append(self.refusal(caller, facts, error))

    def refusal(self, caller: Caller, facts: CallFacts, error: FvsError) -> dict[str, Any]:
        """The audit record of a call refused before the gate proper, not yet appended (a
        batch of them goes to :meth:`record_all`)."""
        return self._entry(caller, facts, None, time.perf_counter(), "REFUSED", error.code.value)

    def record_all(self, records: list[dict[str, Any]]) -> None:
        """Append records made by :meth:`refusal`, with one flush for them all."""
        self.audit.append_all(records)

    def _system_of(self, caller: Caller, auth: Authorization | None) -> System | None:
        if auth is not None:
            return auth.system
        if caller.insecure_dev:
            return DEV_SYSTEM
        try:
            return (
                self.policy.store.system_by_fingerprint(caller.fingerprint)
                if caller.fingerprint
                else None
            )
        except FvsError:
            return None

    def _record(
        self,
        caller: Caller,
        facts: CallFacts,
        auth: Authorization | None,
        start: float,
        outcome: str,
        reason: str,
        fields: dict[str, Any],
        flushes: list[Callable[[], None]] | None = None,
    ) -> None:
        record = self._entry(caller, facts, auth, start, outcome, reason, fields)
        # raises AUDIT_UNAVAILABLE: the caller gets no result
        if flushes is None:
            self.audit.append(record)
        else:
            flushes.append(self.audit.append_deferred(record)[1])

    def _entry(
        self,
        caller: Caller,
        facts: CallFacts,
        auth: Authorization | None,
        start: float,
        outcome: str,
        reason: str,
        fields: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        fields = dict(fields or {})
        system = self._system_of(caller, auth)
        if caller.local_operator:
            system_label = f"local/{caller.local_operator}"
        elif system is not None:
            system_label = system.label
        else:
            system_label = (
                f"unregistered:{caller.fingerprint[:16]}" if caller.fingerprint else "anonymous"
            )
        try:
            conditions = auth.conditions_version if auth else self.policy.store.conditions_version()
        except FvsError:
            conditions = ""
        operation = facts.operation.value
        if facts.action:
            operation = f"{operation}/{facts.action}"
        record: dict[str, Any] = {
            "time": dt.datetime.now(dt.UTC).isoformat(),
            "agency": system.agency_code if system is not None else "",
            "system": system_label,
            "peer": recordable(caller.peer),
            "operation": recordable(operation),
            "purpose": recordable(facts.purpose),
            "consent_ref": recordable(facts.consent.reference) if facts.consent else "",
            "citizen": citizen_hash(self.citizen_key, facts.citizen_id),
            "outcome": outcome,
            "reason": reason,
            "request_id": recordable(fields.pop("request_id", facts.request_id)),
            "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
            "conditions": conditions,
            "permit": auth.permit_id if auth and auth.permit_id is not None else None,
            "details": _bounded_details(facts.details),
            **fields,
        }
        note_agency(record["agency"])  # for the call's log lines and metrics
        return record


def _bounded_details(details: dict[str, str]) -> dict[str, str]:
    """An admin call's details as the audit record holds them: a few short fields (every
    value a caller sent is bounded, whatever the caller of the gate passed)."""
    items = list(details.items())
    bounded = {recordable(k, 64): recordable(v) for k, v in items[:MAX_DETAIL_ITEMS]}
    if len(items) > MAX_DETAIL_ITEMS:
        bounded["omitted_fields"] = str(len(items) - MAX_DETAIL_ITEMS)
    return bounded
