"""The checks every call passes, each refusal with its own reason.

Nothing is cached: every call reads the access store, so a suspension, a revocation or new
conditions apply to the very next call, on connections that are already open too (the
window is zero, well inside the one second the rules allow).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from fvs.access.model import (
    DEFAULT_PERMIT_SERVICES,
    DEV_SYSTEM,
    Authorization,
    Caller,
    Operation,
    Permit,
    PermitStatus,
    Role,
    System,
)
from fvs.access.rate import Limiter, RateLimiter
from fvs.access.store import AccessStore
from fvs.domain import Consent
from fvs.errors import ErrorCode, FvsError


@dataclass(frozen=True)
class ConsentRules:
    max_age: dt.timedelta = dt.timedelta(hours=24)
    clock_skew: dt.timedelta = dt.timedelta(minutes=5)


PermitServices = Callable[[int], frozenset[str] | None]
"""The services a permit covers (None: none recorded, DEFAULT_PERMIT_SERVICES apply)."""


class AccessPolicy:
    def __init__(
        self,
        store: AccessStore,
        consent: ConsentRules,
        limiter: Limiter | None = None,
        services: PermitServices | None = None,
    ) -> None:
        self.store = store
        self.consent = consent
        self.limiter: Limiter = limiter or RateLimiter()
        self.services = services  # set by the Digital ID wiring (fvs.api.digitalid)

    def identify(self, caller: Caller) -> System:
        if caller.insecure_dev:
            return DEV_SYSTEM
        if caller.local_operator:  # the admin CLI on the data directory's own machine
            return System(-1, caller.local_operator, "", frozenset({Role.ADMIN, Role.REGISTRY}), "")
        if not caller.fingerprint:
            raise FvsError(ErrorCode.UNAUTHENTICATED, "a client certificate is required")
        system = self.store.system_by_fingerprint(caller.fingerprint)
        if system is None:
            raise FvsError(
                ErrorCode.SYSTEM_NOT_REGISTERED,
                "this certificate does not belong to a registered system",
                fingerprint=caller.fingerprint[:16],
            )
        if not system.active:
            raise FvsError(ErrorCode.SYSTEM_DISABLED, f"system {system.label} is disabled")
        return system

    def authorize(
        self,
        caller: Caller,
        operation: Operation,
        purpose: str = "",
        consent: Consent | None = None,
        now: dt.datetime | None = None,
        services: frozenset[str] = frozenset(),
    ) -> Authorization:
        """``services``: what the call needs beyond its operation's own service (the combined
        KYC call needs DIGITAL_ID as well as FVS); one permit must cover them all."""
        now = now or dt.datetime.now(dt.UTC)
        system = self.identify(caller)
        if operation.role not in system.roles:
            raise FvsError(
                ErrorCode.OPERATION_NOT_PERMITTED,
                f"system {system.label} may not call {operation.value}",
                operation=operation.value,
            )
        permit_id = None
        if operation in (Operation.VERIFY, Operation.VERIFY_ATTRIBUTES):
            self._check_purpose_exists(purpose)
            if system is not DEV_SYSTEM:  # the development system holds every purpose
                required = frozenset({operation.service}) | services
                permit = self._permit_for(system, purpose, now, required)
                self._check_rate(permit)
                permit_id = permit.id
            self._check_consent(consent, now)
        return Authorization(system, permit_id, self.store.conditions_version())

    def _check_purpose_exists(self, purpose: str) -> None:
        if not purpose:
            raise FvsError(ErrorCode.UNKNOWN_PURPOSE, "purpose is required", field="purpose")
        if self.store.purpose(purpose) is None:
            raise FvsError(
                ErrorCode.UNKNOWN_PURPOSE, f"no purpose {purpose!r} is defined", field="purpose"
            )

    def _services_of(self, permit: Permit) -> frozenset[str]:
        listed = self.services(permit.id) if self.services is not None else None
        return DEFAULT_PERMIT_SERVICES if listed is None else listed

    def _permit_for(
        self, system: System, purpose: str, now: dt.datetime, required: frozenset[str]
    ) -> Permit:
        permits = [p for p in self.store.permits_of(system.agency_code) if purpose in p.purposes]
        if not permits:
            raise FvsError(
                ErrorCode.PURPOSE_NOT_PERMITTED,
                f"agency {system.agency_code} holds no permit for purpose {purpose}",
                purpose=purpose,
            )
        usable = [
            p
            for p in permits
            if p.status is PermitStatus.ACTIVE and p.valid_from <= now < p.valid_until
        ]
        for permit in usable:
            if required <= self._services_of(permit):
                return permit
        if usable:
            missing = sorted(required - self._services_of(usable[0]))
            raise FvsError(
                ErrorCode.SERVICE_NOT_PERMITTED,
                f"permit {usable[0].id} of agency {system.agency_code} does not cover the"
                f" {', '.join(missing)} service",
                permit=str(usable[0].id),
                service=",".join(missing),
            )
        # No permit allows the call: explain with the most telling one.
        suspended = [p for p in permits if p.status is PermitStatus.SUSPENDED]
        active = [p for p in permits if p.status is PermitStatus.ACTIVE]
        if suspended:
            code, permit, why = ErrorCode.PERMIT_SUSPENDED, suspended[0], "suspended"
        elif not active:
            code, permit, why = ErrorCode.PERMIT_REVOKED, permits[0], "revoked"
        elif any(now < p.valid_from for p in active):
            permit = next(p for p in active if now < p.valid_from)
            code, why = (
                ErrorCode.PERMIT_NOT_YET_VALID,
                f"valid from {permit.valid_from.isoformat()}",
            )
        else:
            code, permit = ErrorCode.PERMIT_EXPIRED, active[0]
            why = f"expired at {permit.valid_until.isoformat()}"
        reason = f": {permit.status_reason}" if permit.status is not PermitStatus.ACTIVE else ""
        raise FvsError(code, f"permit {permit.id} is {why}{reason}", permit=str(permit.id))

    def _check_rate(self, permit: Permit) -> None:
        if permit.rate_per_s is None:
            return
        burst = permit.burst or 1
        wait = self.limiter.take(permit.id, permit.rate_per_s, burst)
        if wait > 0:
            error = FvsError(
                ErrorCode.RATE_LIMITED,
                f"permit {permit.id} allows {permit.rate_per_s:g} calls per second (burst "
                f"{burst}); retry in {wait * 1000:.0f} ms",
                permit=str(permit.id),
                rate_per_s=f"{permit.rate_per_s:g}",
                burst=str(burst),
            )
            error.retry_after_s = wait
            raise error

    def _check_consent(self, consent: Consent | None, now: dt.datetime) -> None:
        if consent is None or not consent.reference.strip():
            raise FvsError(
                ErrorCode.CONSENT_REQUIRED,
                "the data owner's consent reference is required",
                problem="missing_reference",
            )
        if consent.given_at is None:
            raise FvsError(
                ErrorCode.CONSENT_REQUIRED,
                "consent.given_at is required",
                problem="missing_time",
            )
        if consent.given_at > now + self.consent.clock_skew:
            raise FvsError(
                ErrorCode.CONSENT_REQUIRED,
                "consent.given_at is in the future",
                problem="future",
            )
        if now - consent.given_at > self.consent.max_age:
            raise FvsError(
                ErrorCode.CONSENT_REQUIRED,
                f"consent was given more than {self.consent.max_age} ago; ask again",
                problem="expired",
            )
