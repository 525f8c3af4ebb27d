from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("box", "landmarks", "detection_score")
    BOX_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    box: Box
    landmarks: _containers.RepeatedCompositeFieldContainer[Point]
    detection_score: float
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., landmarks: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., detection_score: _Optional[float] = ...) -> None: ...

class Quality(_message.Message):
    __slots__ = ("inter_eye_px", "sharpness", "exposure", "contrast", "yaw_deg", "pitch_deg", "roll_deg", "detection_score", "overall")
    INTER_EYE_PX_FIELD_NUMBER: _ClassVar[int]
    SHARPNESS_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_FIELD_NUMBER: _ClassVar[int]
    YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    inter_eye_px: float
    sharpness: float
    exposure: float
    contrast: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    detection_score: float
    overall: float
    def __init__(self, inter_eye_px: _Optional[float] = ..., sharpness: _Optional[float] = ..., exposure: _Optional[float] = ..., contrast: _Optional[float] = ..., yaw_deg: _Optional[float] = ..., pitch_deg: _Optional[float] = ..., roll_deg: _Optional[float] = ..., detection_score: _Optional[float] = ..., overall: _Optional[float] = ...) -> None: ...

class StageTimings(_message.Message):
    __slots__ = ("decode_ms", "detect_ms", "align_ms", "embed_ms", "match_ms", "total_ms", "quality_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    DETECT_MS_FIELD_NUMBER: _ClassVar[int]
    ALIGN_MS_FIELD_NUMBER: _ClassVar[int]
    EMBED_MS_FIELD_NUMBER: _ClassVar[int]
    MATCH_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    detect_ms: float
    align_ms: float
    embed_ms: float
    match_ms: float
    total_ms: float
    quality_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., detect_ms: _Optional[float] = ..., align_ms: _Optional[float] = ..., embed_ms: _Optional[float] = ..., match_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., quality_ms: _Optional[float] = ...) -> None: ...
