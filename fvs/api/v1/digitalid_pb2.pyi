from fvs.api.v1 import attributes_pb2 as _attributes_pb2
from fvs.api.v1 import verification_pb2 as _verification_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifyAttributesRequest(_message.Message):
    __slots__ = ("citizen_id", "claimed", "purpose", "consent", "request_id")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    claimed: _attributes_pb2.Attributes
    purpose: str
    consent: _verification_pb2.Consent
    request_id: str
    def __init__(self, citizen_id: _Optional[str] = ..., claimed: _Optional[_Union[_attributes_pb2.Attributes, _Mapping]] = ..., purpose: _Optional[str] = ..., consent: _Optional[_Union[_verification_pb2.Consent, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class VerifyAttributesResponse(_message.Message):
    __slots__ = ("results", "all_match", "card_status", "card_status_reason", "alive", "request_id")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ALL_MATCH_FIELD_NUMBER: _ClassVar[int]
    CARD_STATUS_FIELD_NUMBER: _ClassVar[int]
    CARD_STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    results: _attributes_pb2.AttributeResults
    all_match: bool
    card_status: _attributes_pb2.IdCardStatus
    card_status_reason: _attributes_pb2.IdCardStatusReason
    alive: bool
    request_id: str
    def __init__(self, results: _Optional[_Union[_attributes_pb2.AttributeResults, _Mapping]] = ..., all_match: _Optional[bool] = ..., card_status: _Optional[_Union[_attributes_pb2.IdCardStatus, str]] = ..., card_status_reason: _Optional[_Union[_attributes_pb2.IdCardStatusReason, str]] = ..., alive: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...
