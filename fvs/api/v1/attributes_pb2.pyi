from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttributeResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTE_RESULT_UNSPECIFIED: _ClassVar[AttributeResult]
    NOT_PROVIDED: _ClassVar[AttributeResult]
    MATCH: _ClassVar[AttributeResult]
    NO_MATCH: _ClassVar[AttributeResult]

class IdCardStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_CARD_STATUS_UNSPECIFIED: _ClassVar[IdCardStatus]
    ID_CARD_ACTIVE: _ClassVar[IdCardStatus]
    ID_CARD_EXPIRED: _ClassVar[IdCardStatus]
    ID_CARD_REVOKED: _ClassVar[IdCardStatus]
    ID_CARD_NOT_ISSUED: _ClassVar[IdCardStatus]

class IdCardStatusReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_CARD_STATUS_REASON_UNSPECIFIED: _ClassVar[IdCardStatusReason]
    ID_CARD_LOST: _ClassVar[IdCardStatusReason]
    ID_CARD_STOLEN: _ClassVar[IdCardStatusReason]
    ID_CARD_DAMAGED: _ClassVar[IdCardStatusReason]
    ID_CARD_REPLACED: _ClassVar[IdCardStatusReason]
    ID_CARD_HOLDER_DECEASED: _ClassVar[IdCardStatusReason]
ATTRIBUTE_RESULT_UNSPECIFIED: AttributeResult
NOT_PROVIDED: AttributeResult
MATCH: AttributeResult
NO_MATCH: AttributeResult
ID_CARD_STATUS_UNSPECIFIED: IdCardStatus
ID_CARD_ACTIVE: IdCardStatus
ID_CARD_EXPIRED: IdCardStatus
ID_CARD_REVOKED: IdCardStatus
ID_CARD_NOT_ISSUED: IdCardStatus
ID_CARD_STATUS_REASON_UNSPECIFIED: IdCardStatusReason
ID_CARD_LOST: IdCardStatusReason
ID_CARD_STOLEN: IdCardStatusReason
ID_CARD_DAMAGED: IdCardStatusReason
ID_CARD_REPLACED: IdCardStatusReason
ID_CARD_HOLDER_DECEASED: IdCardStatusReason

class Attributes(_message.Message):
    __slots__ = ("first_name_th", "last_name_th", "first_name_en", "last_name_en", "birth_date", "laser_code", "province", "district")
    FIRST_NAME_TH_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_TH_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_EN_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_EN_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    LASER_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    first_name_th: str
    last_name_th: str
    first_name_en: str
    last_name_en: str
    birth_date: str
    laser_code: str
    province: str
    district: str
    def __init__(self, first_name_th: _Optional[str] = ..., last_name_th: _Optional[str] = ..., first_name_en: _Optional[str] = ..., last_name_en: _Optional[str] = ..., birth_date: _Optional[str] = ..., laser_code: _Optional[str] = ..., province: _Optional[str] = ..., district: _Optional[str] = ...) -> None: ...

class AttributeResults(_message.Message):
    __slots__ = ("first_name_th", "last_name_th", "first_name_en", "last_name_en", "birth_date", "laser_code", "province", "district")
    FIRST_NAME_TH_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_TH_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_EN_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_EN_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    LASER_CODE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    first_name_th: AttributeResult
    last_name_th: AttributeResult
    first_name_en: AttributeResult
    last_name_en: AttributeResult
    birth_date: AttributeResult
    laser_code: AttributeResult
    province: AttributeResult
    district: AttributeResult
    def __init__(self, first_name_th: _Optional[_Union[AttributeResult, str]] = ..., last_name_th: _Optional[_Union[AttributeResult, str]] = ..., first_name_en: _Optional[_Union[AttributeResult, str]] = ..., last_name_en: _Optional[_Union[AttributeResult, str]] = ..., birth_date: _Optional[_Union[AttributeResult, str]] = ..., laser_code: _Optional[_Union[AttributeResult, str]] = ..., province: _Optional[_Union[AttributeResult, str]] = ..., district: _Optional[_Union[AttributeResult, str]] = ...) -> None: ...

class AttributeVerification(_message.Message):
    __slots__ = ("results", "all_match", "card_status", "card_status_reason", "alive")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ALL_MATCH_FIELD_NUMBER: _ClassVar[int]
    CARD_STATUS_FIELD_NUMBER: _ClassVar[int]
    CARD_STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    results: AttributeResults
    all_match: bool
    card_status: IdCardStatus
    card_status_reason: IdCardStatusReason
    alive: bool
    def __init__(self, results: _Optional[_Union[AttributeResults, _Mapping]] = ..., all_match: _Optional[bool] = ..., card_status: _Optional[_Union[IdCardStatus, str]] = ..., card_status_reason: _Optional[_Union[IdCardStatusReason, str]] = ..., alive: _Optional[bool] = ...) -> None: ...

class IdCardRecord(_message.Message):
    __slots__ = ("laser_code", "registered_birth_date", "issued_on", "expires_on", "status", "status_reason", "alive", "deceased_on", "house_no", "district", "province")
    LASER_CODE_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_ON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_ON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    DECEASED_ON_FIELD_NUMBER: _ClassVar[int]
    HOUSE_NO_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    laser_code: str
    registered_birth_date: str
    issued_on: str
    expires_on: str
    status: IdCardStatus
    status_reason: IdCardStatusReason
    alive: bool
    deceased_on: str
    house_no: str
    district: str
    province: str
    def __init__(self, laser_code: _Optional[str] = ..., registered_birth_date: _Optional[str] = ..., issued_on: _Optional[str] = ..., expires_on: _Optional[str] = ..., status: _Optional[_Union[IdCardStatus, str]] = ..., status_reason: _Optional[_Union[IdCardStatusReason, str]] = ..., alive: _Optional[bool] = ..., deceased_on: _Optional[str] = ..., house_no: _Optional[str] = ..., district: _Optional[str] = ..., province: _Optional[str] = ...) -> None: ...
