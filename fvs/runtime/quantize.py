"""int8 variants of a recogniser with onnxruntime's quantisation tools.

``static``: QDQ, int8 per-channel weights and uint8 activations whose ranges are calibrated
(MinMax) on aligned face crops the caller provides (the training side of a data set, never the
photos a variant is then evaluated on). ``dynamic``: int8 weights, activation ranges computed
at run time (no calibration data). Both are deterministic for the same inputs and onnxruntime
version, so a manifest can pin the result's sha256.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from fvs.errors import ConfigError

Mode = Literal["static", "dynamic"]
# QDQ with per-channel axes needs opset 13 (DequantizeLinear's axis attribute).
QDQ_OPSET = 13


class _Blobs(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, name: str, blobs: npt.NDArray[np.float32]) -> None:
        self._items: Iterator[dict[str, npt.NDArray[np.float32]]] = iter(
            {name: blobs[k : k + 1]} for k in range(blobs.shape[0])
        )

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        return next(self._items, None)


def quantize_recognizer(
    weights: bytes, mode: Mode, calibration: npt.NDArray[np.float32] | None = None
) -> bytes:
    """int8 ONNX bytes of the recogniser ``weights``. ``calibration``: (N, 3, S, S) network
    inputs (the embedder's preprocessing of aligned crops), required for ``static``."""
    if mode == "static" and (calibration is None or calibration.shape[0] == 0):
        raise ConfigError("static quantisation needs calibration crops")
    with tempfile.TemporaryDirectory(prefix="fvs-quantize-") as tmp:
        folder = Path(tmp)
        source, prepared, out = folder / "in.onnx", folder / "pre.onnx", folder / "out.onnx"
        source.write_bytes(weights)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if mode == "dynamic":
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
        else:
            assert calibration is not None
            model = onnx.load(str(prepared))
            opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
            if opset < QDQ_OPSET:
                onnx.save(version_converter.convert_version(model, QDQ_OPSET), str(prepared))
            name = (
                ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"])
                .get_inputs()[0]
                .name
            )
            quantize_static(
                str(prepared),
                str(out),
                _Blobs(name, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        return out.read_bytes()
