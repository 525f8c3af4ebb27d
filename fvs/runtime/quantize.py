"""int8 and fp16 variants of a pack's networks with onnxruntime's tools.

``static``: QDQ, int8 per-channel weights (7-bit range) and uint8 activations whose ranges are
calibrated (MinMax) on aligned face crops the caller provides (the training side of a data
set, never the photos a variant is then evaluated on). ``dynamic``: int8 weights, activation
ranges computed at run time (no calibration data). ``fp16`` (:func:`to_fp16`): weights and
activations in float16 for CUDA and TensorRT, inputs and outputs kept float32 so the pipeline
feeds it as it is. All are deterministic for the same inputs and onnxruntime version, so a
manifest can pin the result's sha256.
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
from fvs.runtime.manifest import Manifest, read_verified, sha256_file

Mode = Literal["static", "dynamic"]
Variant = Literal["static", "dynamic", "fp16"]
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
                # 7-bit weights: on x86 CPUs without VNNI (AVX2 alone) onnxruntime's u8 x s8
                # kernels add pairs of products in int16, which full-range weights saturate.
                # Measured on an AVX2-only host, LFW: min cosine to fp32 0.17 -> 0.87 (1,200
                # faces), accuracy 98.55 % full-range (99.77 % on an AVX-512 VNNI host).
                reduce_range=True,
            )
        return out.read_bytes()


def to_fp16(weights: bytes) -> bytes:
    """fp16 ONNX bytes of the network ``weights`` (onnxruntime's float16 converter): every
    initialiser and activation float16, the graph's inputs and outputs float32 (a Cast at
    each end). Halves the file and lets CUDA and TensorRT run fp16 kernels; on the CPU it
    runs, more slowly, for checking its accuracy."""
    from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: PLC0415

    model = onnx.load_from_string(weights)
    converted = convert_float_to_float16(model, keep_io_types=True)
    data: bytes = converted.SerializeToString()
    return data


def write_variant(
    source: Manifest,
    folder: Path,
    out_dir: Path,
    pack_id: str,
    variant: Variant,
    calibration: npt.NDArray[np.float32] | None = None,
) -> Manifest:
    """Writes pack ``pack_id`` (``out_dir/pack_id.json`` and its files in ``out_dir/pack_id/``)
    made from ``source`` (files in ``folder``, verified against their hashes): ``fp16`` both
    networks, ``static`` / ``dynamic`` the recogniser in int8 and the detector as it is.
    Returns its manifest, whose own hashes and model id keep its templates apart."""
    pack_dir = out_dir / pack_id
    pack_dir.mkdir(parents=True, exist_ok=True)
    parts: dict[str, dict[str, str]] = {}
    for part, spec in (("detector", source.detector), ("recognizer", source.recognizer)):
        weights = read_verified(folder, spec.file, spec.sha256).data
        name = spec.file
        if variant == "fp16":
            weights, name = to_fp16(weights), f"{Path(spec.file).stem}_fp16.onnx"
        elif part == "recognizer":
            weights = quantize_recognizer(weights, variant, calibration)
            name = f"{Path(spec.file).stem}_int8_{variant}.onnx"
        (pack_dir / name).write_bytes(weights)
        parts[part] = {"file": name, "sha256": sha256_file(pack_dir / name)}
    if variant == "fp16":
        description = (
            f"{source.id} with both networks in float16 (inputs and outputs float32), for "
            "CUDA/TensorRT; runs on the CPU too, more slowly"
        )
    else:
        calibrated = f", calibrated on {len(calibration)} faces" if calibration is not None else ""
        description = (
            f"{source.id} with its recogniser quantised to int8 ({variant}{calibrated}; the "
            "detector unchanged)"
        )
    manifest = source.model_copy(
        update={
            "id": pack_id,
            "location": pack_id,
            "description": description,
            "detector": source.detector.model_copy(update=parts["detector"]),
            "recognizer": source.recognizer.model_copy(update=parts["recognizer"]),
        }
    )
    (out_dir / f"{pack_id}.json").write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest
