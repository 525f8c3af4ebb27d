import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgencyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENCY_KIND_UNSPECIFIED: _ClassVar[AgencyKind]
    AGENCY_KIND_STATE: _ClassVar[AgencyKind]
    AGENCY_KIND_PRIVATE: _ClassVar[AgencyKind]

class PermitStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERMIT_STATUS_UNSPECIFIED: _ClassVar[PermitStatus]
    PERMIT_STATUS_ACTIVE: _ClassVar[PermitStatus]
    PERMIT_STATUS_SUSPENDED: _ClassVar[PermitStatus]
    PERMIT_STATUS_REVOKED: _ClassVar[PermitStatus]
AGENCY_KIND_UNSPECIFIED: AgencyKind
AGENCY_KIND_STATE: AgencyKind
AGENCY_KIND_PRIVATE: AgencyKind
PERMIT_STATUS_UNSPECIFIED: PermitStatus
PERMIT_STATUS_ACTIVE: PermitStatus
PERMIT_STATUS_SUSPENDED: PermitStatus
PERMIT_STATUS_REVOKED: PermitStatus

class Supervisor(_message.Message):
    __slots__ = ("name", "contact")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    name: str
    contact: str
    def __init__(self, name: _Optional[str] = ..., contact: _Optional[str] = ...) -> None: ...

class Agency(_message.Message):
    __slots__ = ("code", "kind", "name", "registration_number", "mission", "supervisors")
    CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MISSION_FIELD_NUMBER: _ClassVar[int]
    SUPERVISORS_FIELD_NUMBER: _ClassVar[int]
    code: str
    kind: AgencyKind
    name: str
    registration_number: str
    mission: str
    supervisors: _containers.RepeatedCompositeFieldContainer[Supervisor]
    def __init__(self, code: _Optional[str] = ..., kind: _Optional[_Union[AgencyKind, str]] = ..., name: _Optional[str] = ..., registration_number: _Optional[str] = ..., mission: _Optional[str] = ..., supervisors: _Optional[_Iterable[_Union[Supervisor, _Mapping]]] = ...) -> None: ...

class AddAgencyRequest(_message.Message):
    __slots__ = ("agency",)
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...

class GetAgencyRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class AgencyDetails(_message.Message):
    __slots__ = ("agency", "permits", "systems")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    PERMITS_FIELD_NUMBER: _ClassVar[int]
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    permits: _containers.RepeatedCompositeFieldContainer[Permit]
    systems: _containers.RepeatedCompositeFieldContainer[System]
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ..., permits: _Optional[_Iterable[_Union[Permit, _Mapping]]] = ..., systems: _Optional[_Iterable[_Union[System, _Mapping]]] = ...) -> None: ...

class ListAgenciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgenciesResponse(_message.Message):
    __slots__ = ("agencies",)
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    agencies: _containers.RepeatedCompositeFieldContainer[Agency]
    def __init__(self, agencies: _Optional[_Iterable[_Union[Agency, _Mapping]]] = ...) -> None: ...

class Purpose(_message.Message):
    __slots__ = ("code", "description")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class AddPurposeRequest(_message.Message):
    __slots__ = ("purpose",)
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    purpose: Purpose
    def __init__(self, purpose: _Optional[_Union[Purpose, _Mapping]] = ...) -> None: ...

class Permit(_message.Message):
    __slots__ = ("id", "agency_code", "status", "status_reason", "status_changed_at", "valid_from", "valid_until", "purposes", "conditions_version", "rate_per_s", "burst")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    id: int
    agency_code: str
    status: PermitStatus
    status_reason: str
    status_changed_at: _timestamp_pb2.Timestamp
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    purposes: _containers.RepeatedScalarFieldContainer[str]
    conditions_version: str
    rate_per_s: float
    burst: int
    def __init__(self, id: _Optional[int] = ..., agency_code: _Optional[str] = ..., status: _Optional[_Union[PermitStatus, str]] = ..., status_reason: _Optional[str] = ..., status_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., purposes: _Optional[_Iterable[str]] = ..., conditions_version: _Optional[str] = ..., rate_per_s: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class SetRateLimitRequest(_message.Message):
    __slots__ = ("permit_id", "rate_per_s", "burst")
    PERMIT_ID_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    permit_id: int
    rate_per_s: float
    burst: int
    def __init__(self, permit_id: _Optional[int] = ..., rate_per_s: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class GrantPermitRequest(_message.Message):
    __slots__ = ("agency_code", "purposes", "valid_from", "valid_until")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    purposes: _containers.RepeatedScalarFieldContainer[str]
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, agency_code: _Optional[str] = ..., purposes: _Optional[_Iterable[str]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChangePermitRequest(_message.Message):
    __slots__ = ("permit_id", "reason")
    PERMIT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    permit_id: int
    reason: str
    def __init__(self, permit_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class System(_message.Message):
    __slots__ = ("id", "agency_code", "name", "fingerprint", "active")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    id: int
    agency_code: str
    name: str
    fingerprint: str
    active: bool
    def __init__(self, id: _Optional[int] = ..., agency_code: _Optional[str] = ..., name: _Optional[str] = ..., fingerprint: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class RegisterSystemRequest(_message.Message):
    __slots__ = ("agency_code", "name", "certificate_pem", "fingerprint")
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    agency_code: str
    name: str
    certificate_pem: str
    fingerprint: str
    def __init__(self, agency_code: _Optional[str] = ..., name: _Optional[str] = ..., certificate_pem: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class SetConditionsRequest(_message.Message):
    __slots__ = ("version", "summary")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    version: str
    summary: str
    def __init__(self, version: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class SetConditionsResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...
