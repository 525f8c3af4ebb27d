"""onnxruntime provider options for the GPU providers (issue 11: GPU-ready). Building them
needs no GPU; running them does (benchmarks/gpu.sh)."""

from __future__ import annotations

from pathlib import Path

from fvs.config import Settings
from fvs.runtime.sessions import CPU, CUDA, TENSORRT, SessionOptions, resolve_providers


def test_tensorrt_gets_fp16_and_an_engine_cache(tmp_path: Path) -> None:
    options = SessionOptions(
        resolve_providers("tensorrt"), trt_cache_dir=tmp_path, device_id=1, gpu_mem_limit_mb=512
    )
    trt, cuda, cpu = options.provider_options()
    assert options.providers == [TENSORRT, CUDA, CPU]
    assert trt["trt_fp16_enable"] == "1" and trt["device_id"] == "1"
    assert trt["trt_engine_cache_enable"] == "1"
    assert trt["trt_engine_cache_path"] == str(tmp_path)
    assert cuda["cudnn_conv_algo_search"] == "HEURISTIC"
    assert cuda["gpu_mem_limit"] == str(512 * 1024 * 1024)
    assert cpu == {}


def test_fp16_off_and_no_cache() -> None:
    (trt, _, _) = SessionOptions(resolve_providers("tensorrt"), trt_fp16=False).provider_options()
    assert trt["trt_fp16_enable"] == "0" and "trt_engine_cache_enable" not in trt
    assert SessionOptions([CPU]).provider_options() == [{}]


def test_engine_cache_defaults_beside_the_data() -> None:
    settings = Settings()
    settings.store.data_dir = Path("/srv/fvs")
    assert settings.trt_cache_dir() == Path("/srv/fvs/trt-cache")
    settings.model.trt_cache_dir = Path("/cache")
    assert settings.trt_cache_dir() == Path("/cache")
