import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from fvs.api.v1 import attributes_pb2 as _attributes_pb2
from fvs.api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifyBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[VerifyRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[VerifyRequest, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "reason", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class VerifyBatchResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: VerifyResponse
    error: ItemError
    def __init__(self, response: _Optional[_Union[VerifyResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class VerifyBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VerifyBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VerifyBatchResult, _Mapping]]] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("reference", "given_at")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    GIVEN_AT_FIELD_NUMBER: _ClassVar[int]
    reference: str
    given_at: _timestamp_pb2.Timestamp
    def __init__(self, reference: _Optional[str] = ..., given_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("citizen_id", "image", "purpose", "consent", "request_id", "claimed")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    image: bytes
    purpose: str
    consent: Consent
    request_id: str
    claimed: _attributes_pb2.Attributes
    def __init__(self, citizen_id: _Optional[str] = ..., image: _Optional[bytes] = ..., purpose: _Optional[str] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ..., request_id: _Optional[str] = ..., claimed: _Optional[_Union[_attributes_pb2.Attributes, _Mapping]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("match_score", "similarity", "model", "probe_face", "request_id", "template_version", "score_mapping", "timings", "false_match_rate", "quality", "receipt", "attributes")
    MATCH_SCORE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROBE_FACE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_MAPPING_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    FALSE_MATCH_RATE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    match_score: float
    similarity: float
    model: str
    probe_face: _common_pb2.Face
    request_id: str
    template_version: int
    score_mapping: str
    timings: _common_pb2.StageTimings
    false_match_rate: float
    quality: _common_pb2.Quality
    receipt: Receipt
    attributes: _attributes_pb2.AttributeVerification
    def __init__(self, match_score: _Optional[float] = ..., similarity: _Optional[float] = ..., model: _Optional[str] = ..., probe_face: _Optional[_Union[_common_pb2.Face, _Mapping]] = ..., request_id: _Optional[str] = ..., template_version: _Optional[int] = ..., score_mapping: _Optional[str] = ..., timings: _Optional[_Union[_common_pb2.StageTimings, _Mapping]] = ..., false_match_rate: _Optional[float] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., attributes: _Optional[_Union[_attributes_pb2.AttributeVerification, _Mapping]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("payload", "signature", "key_id")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    key_id: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...
