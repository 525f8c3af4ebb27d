"""Access-control values: agencies, permits, purposes, systems, callers."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class AgencyKind(enum.Enum):
    STATE = "STATE"  # government bodies, state enterprises, courts, independent organs...
    PRIVATE = "PRIVATE"  # juristic persons


class PermitStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    REVOKED = "REVOKED"


class Role(enum.Enum):
    AGENCY = "AGENCY"  # an agency's registered computer system: Verify
    REGISTRY = "REGISTRY"  # a registry operator: Enroll, GetCitizen, DeleteEnrollment,
    # SearchDuplicates
    ADMIN = "ADMIN"  # an administrator: the Admin service


class Operation(enum.Enum):
    VERIFY = "Verify"
    ENROLL = "Enroll"
    GET_CITIZEN = "GetCitizen"
    DELETE_ENROLLMENT = "DeleteEnrollment"
    ADMIN = "Admin"
    VERIFY_ATTRIBUTES = "VerifyAttributes"  # the Digital ID service (issue 14)
    SEARCH_DUPLICATES = "SearchDuplicates"  # 1:N search, registry operators only (issue 9)

    @property
    def service(self) -> str:
        """The permitted service (issue 14) an agency's permit must cover; "" for none."""
        return SERVICE_OF.get(self, "")

    @property
    def role(self) -> Role:
        if self in (Operation.VERIFY, Operation.VERIFY_ATTRIBUTES):
            return Role.AGENCY
        if self is Operation.ADMIN:
            return Role.ADMIN
        return Role.REGISTRY


# The services a permit may cover. A permit without a recorded list covers FVS only (every
# permit granted before the Digital ID service existed was for the face match).
SERVICE_FVS = "FVS"
SERVICE_DIGITAL_ID = "DIGITAL_ID"
SERVICES = frozenset({SERVICE_FVS, SERVICE_DIGITAL_ID})
DEFAULT_PERMIT_SERVICES = frozenset({SERVICE_FVS})
SERVICE_OF = {Operation.VERIFY: SERVICE_FVS, Operation.VERIFY_ATTRIBUTES: SERVICE_DIGITAL_ID}


@dataclass(frozen=True)
class Supervisor:
    name: str
    contact: str


@dataclass(frozen=True)
class Agency:
    code: str
    kind: AgencyKind
    name: str
    registration_number: str
    mission: str
    supervisors: tuple[Supervisor, ...] = ()
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class Purpose:
    code: str
    description: str


@dataclass(frozen=True)
class Permit:
    id: int
    agency_code: str
    status: PermitStatus
    status_reason: str
    status_changed_at: dt.datetime
    valid_from: dt.datetime
    valid_until: dt.datetime
    purposes: tuple[str, ...]
    conditions_version: str
    granted_at: dt.datetime
    # Verify calls per second allowed under this permit, and the burst above that rate
    # (token bucket); None: no limit.
    rate_per_s: float | None = None
    burst: int | None = None


@dataclass(frozen=True)
class System:
    """A registered client: an agency's computer system, or an operator's."""

    id: int
    name: str
    agency_code: str  # "" for operators
    roles: frozenset[Role]
    fingerprint: str
    active: bool = True

    @property
    def label(self) -> str:
        return f"{self.agency_code}/{self.name}" if self.agency_code else f"operator/{self.name}"


DEV_SYSTEM = System(
    id=0,
    name="dev-insecure",
    agency_code="DEV",
    roles=frozenset({Role.AGENCY, Role.REGISTRY}),
    fingerprint="",
)
"""The built-in development system every call acts as on an --insecure loopback server."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the transport established it."""

    fingerprint: str = ""  # sha256 of the client certificate; "" when none
    insecure_dev: bool = False
    peer: str = ""
    local_operator: str = field(default="")  # set for the local admin CLI

    @property
    def authenticated(self) -> bool:
        return self.insecure_dev or bool(self.fingerprint) or bool(self.local_operator)


@dataclass(frozen=True)
class Authorization:
    system: System
    permit_id: int | None
    conditions_version: str
