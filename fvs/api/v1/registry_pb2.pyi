import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from fvs.api.v1 import attributes_pb2 as _attributes_pb2
from fvs.api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEX_UNSPECIFIED: _ClassVar[Sex]
    SEX_MALE: _ClassVar[Sex]
    SEX_FEMALE: _ClassVar[Sex]

class CardStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_STATUS_UNSPECIFIED: _ClassVar[CardStatus]
    CARD_STATUS_ACTIVE: _ClassVar[CardStatus]
    CARD_STATUS_EXPIRED: _ClassVar[CardStatus]
    CARD_STATUS_REVOKED: _ClassVar[CardStatus]
SEX_UNSPECIFIED: Sex
SEX_MALE: Sex
SEX_FEMALE: Sex
CARD_STATUS_UNSPECIFIED: CardStatus
CARD_STATUS_ACTIVE: CardStatus
CARD_STATUS_EXPIRED: CardStatus
CARD_STATUS_REVOKED: CardStatus

class EnrollRequest(_message.Message):
    __slots__ = ("citizen_id", "image", "create_if_missing")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_IF_MISSING_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    image: bytes
    create_if_missing: bool
    def __init__(self, citizen_id: _Optional[str] = ..., image: _Optional[bytes] = ..., create_if_missing: _Optional[bool] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("citizen_id", "template_version", "model", "face", "citizen_created", "enrolled_at", "quality", "duplicates", "duplicate_case_id")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    CITIZEN_CREATED_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_CASE_ID_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    template_version: int
    model: str
    face: _common_pb2.Face
    citizen_created: bool
    enrolled_at: _timestamp_pb2.Timestamp
    quality: _common_pb2.Quality
    duplicates: _containers.RepeatedCompositeFieldContainer[DuplicateCandidate]
    duplicate_case_id: int
    def __init__(self, citizen_id: _Optional[str] = ..., template_version: _Optional[int] = ..., model: _Optional[str] = ..., face: _Optional[_Union[_common_pb2.Face, _Mapping]] = ..., citizen_created: _Optional[bool] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quality: _Optional[_Union[_common_pb2.Quality, _Mapping]] = ..., duplicates: _Optional[_Iterable[_Union[DuplicateCandidate, _Mapping]]] = ..., duplicate_case_id: _Optional[int] = ...) -> None: ...

class DuplicateCandidate(_message.Message):
    __slots__ = ("citizen_id", "similarity", "score", "template_version", "duplicate")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    similarity: float
    score: float
    template_version: int
    duplicate: bool
    def __init__(self, citizen_id: _Optional[str] = ..., similarity: _Optional[float] = ..., score: _Optional[float] = ..., template_version: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SearchDuplicatesRequest(_message.Message):
    __slots__ = ("image", "citizen_id", "k")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    citizen_id: str
    k: int
    def __init__(self, image: _Optional[bytes] = ..., citizen_id: _Optional[str] = ..., k: _Optional[int] = ...) -> None: ...

class SearchDuplicatesResponse(_message.Message):
    __slots__ = ("candidates", "model", "max_fmr")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_FMR_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[DuplicateCandidate]
    model: str
    max_fmr: float
    def __init__(self, candidates: _Optional[_Iterable[_Union[DuplicateCandidate, _Mapping]]] = ..., model: _Optional[str] = ..., max_fmr: _Optional[float] = ...) -> None: ...

class GetCitizenRequest(_message.Message):
    __slots__ = ("citizen_id",)
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    def __init__(self, citizen_id: _Optional[str] = ...) -> None: ...

class Citizen(_message.Message):
    __slots__ = ("citizen_id", "first_name_th", "last_name_th", "first_name_en", "last_name_en", "sex", "birth_date", "province", "district", "card_status", "synthetic", "enrolled", "template_version", "template_model", "id_card")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_TH_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_TH_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_EN_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_EN_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    CARD_STATUS_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ID_CARD_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    first_name_th: str
    last_name_th: str
    first_name_en: str
    last_name_en: str
    sex: Sex
    birth_date: str
    province: str
    district: str
    card_status: CardStatus
    synthetic: bool
    enrolled: bool
    template_version: int
    template_model: str
    id_card: _attributes_pb2.IdCardRecord
    def __init__(self, citizen_id: _Optional[str] = ..., first_name_th: _Optional[str] = ..., last_name_th: _Optional[str] = ..., first_name_en: _Optional[str] = ..., last_name_en: _Optional[str] = ..., sex: _Optional[_Union[Sex, str]] = ..., birth_date: _Optional[str] = ..., province: _Optional[str] = ..., district: _Optional[str] = ..., card_status: _Optional[_Union[CardStatus, str]] = ..., synthetic: _Optional[bool] = ..., enrolled: _Optional[bool] = ..., template_version: _Optional[int] = ..., template_model: _Optional[str] = ..., id_card: _Optional[_Union[_attributes_pb2.IdCardRecord, _Mapping]] = ...) -> None: ...

class DeleteEnrollmentRequest(_message.Message):
    __slots__ = ("citizen_id",)
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    def __init__(self, citizen_id: _Optional[str] = ...) -> None: ...

class DeleteEnrollmentResponse(_message.Message):
    __slots__ = ("citizen_id", "templates_deleted")
    CITIZEN_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_DELETED_FIELD_NUMBER: _ClassVar[int]
    citizen_id: str
    templates_deleted: int
    def __init__(self, citizen_id: _Optional[str] = ..., templates_deleted: _Optional[int] = ...) -> None: ...
