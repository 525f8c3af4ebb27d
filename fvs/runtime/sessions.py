"""onnxruntime sessions with explicit, verified execution providers."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fvs.config import Providers
from fvs.errors import ConfigError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

_GPU_HINT = (
    "Install onnxruntime-gpu (pip install .[gpu]) with the CUDA and cuDNN it was built for, or "
    "set FVS_MODEL__PROVIDERS=cpu explicitly."
)

_REQUESTED: dict[str, list[str]] = {
    "cpu": [CPU],
    "cuda": [CUDA, CPU],
    "tensorrt": [TENSORRT, CUDA, CPU],
}


def resolve_providers(choice: Providers) -> list[str]:
    """Provider list for a config choice. ``auto`` picks CUDA when onnxruntime has it."""
    if choice == "auto":
        choice = "cuda" if CUDA in ort.get_available_providers() else "cpu"
        log.info("providers=auto resolved to %s", choice)
    return list(_REQUESTED[choice])


@dataclass(frozen=True)
class SessionOptions:
    providers: list[str]
    intra_op_threads: int = 0
    allow_spinning: bool = False
    trt_fp16: bool = True
    trt_cache_dir: Path | None = None
    device_id: int = 0
    gpu_mem_limit_mb: int = 0
    adaptive_threads: bool = False

    def narrow_too(self) -> bool:
        """Whether a one-thread twin of each session is built (see :class:`Load`): on the
        CPU, when a session may use more than one intra-op thread."""
        return self.adaptive_threads and self.providers[0] == CPU and self.intra_op_threads != 1

    def provider_options(self) -> list[dict[str, str]]:
        """onnxruntime's per-provider options, in ``providers`` order.

        TensorRT: fp16 kernels (its accuracy figures are the fp32 pack's; README "GPU"),
        engines and timing caches kept in ``trt_cache_dir`` (a restart loads them instead of
        rebuilding), and the CUDA provider behind it for the nodes TensorRT does not take.
        CUDA: heuristic cuDNN convolution search (exhaustive search costs seconds per new
        input shape, and the detector sees several), copies on the default stream."""
        out: list[dict[str, str]] = []
        for name in self.providers:
            if name == TENSORRT:
                opts = {
                    "device_id": str(self.device_id),
                    "trt_fp16_enable": "1" if self.trt_fp16 else "0",
                    "trt_timing_cache_enable": "1",
                }
                if self.trt_cache_dir is not None:
                    opts["trt_engine_cache_enable"] = "1"
                    opts["trt_engine_cache_path"] = str(self.trt_cache_dir)
                    opts["trt_timing_cache_path"] = str(self.trt_cache_dir)
                out.append(opts)
            elif name == CUDA:
                opts = {
                    "device_id": str(self.device_id),
                    "cudnn_conv_algo_search": "HEURISTIC",
                    "do_copy_in_default_stream": "1",
                }
                if self.gpu_mem_limit_mb:
                    opts["gpu_mem_limit"] = str(self.gpu_mem_limit_mb * 1024 * 1024)
                out.append(opts)
            else:
                out.append({})
        return out


class Load:
    """How many requests are in the pipeline now, which decides the threads a run gets.

    On the CPU a lone request runs each network on all intra-op threads (lowest latency);
    while several requests are in the pipeline, each runs on one thread of its own (a
    session's one-thread twin), so that concurrent requests fill the cores side by side instead
    of contending for one shared thread pool. Measured on 2 cores: the same latency for a lone
    caller, more throughput with several (README "Performance").
    """

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        with self._lock:
            self._count += 1
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._count -= 1

    @property
    def count(self) -> int:
        """Requests in the pipeline now."""
        return self._count

    def shared(self) -> bool:
        """True while more than one request is in the pipeline."""
        return self._count > 1


class Session:
    """One onnxruntime InferenceSession over verified weight bytes, and with
    ``options.adaptive_threads`` on the CPU its one-thread twin ``narrow``, used while ``load``
    says the pipeline is shared.

    Raises ConfigError at construction when the first requested provider is not the one
    onnxruntime activated: a GPU request never silently falls back to the CPU.
    """

    def __init__(
        self, weights: bytes, name: str, options: SessionOptions, load: Load | None = None
    ) -> None:
        self.inner = self._create(weights, name, options, options.intra_op_threads)
        self.narrow = (
            self._create(weights, name, options, 1)
            if load is not None and options.narrow_too()
            else None
        )
        self.load = load
        self.threads = options.intra_op_threads or os.cpu_count() or 1  # the full pool's
        self.name = name
        self.providers = self.inner.get_providers()
        log.info(
            "%s: session on %s%s",
            name,
            self.providers,
            " (and a one-thread twin for concurrent requests)" if self.narrow else "",
        )

    @staticmethod
    def _create(
        weights: bytes, name: str, options: SessionOptions, threads: int
    ) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        spin = "1" if options.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        so.log_severity_level = 3
        wanted = options.providers[0]
        available = ort.get_available_providers()
        if wanted not in available:
            raise ConfigError(
                f"{name}: execution provider {wanted} was requested but this onnxruntime "
                f"({ort.__version__}) has only {available}. {_GPU_HINT}"
            )
        try:
            if options.trt_cache_dir is not None and TENSORRT in options.providers:
                options.trt_cache_dir.mkdir(parents=True, exist_ok=True)
            session = ort.InferenceSession(
                weights,
                sess_options=so,
                providers=options.providers,
                provider_options=options.provider_options(),
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"{name}: onnxruntime could not create a session: {exc}") from exc
        active = session.get_providers()
        if not active or active[0] != wanted:
            raise ConfigError(
                f"{name}: execution provider {wanted} was requested but onnxruntime activated "
                f"{active}: it could not start {wanted} (see onnxruntime's log above). "
                f"{_GPU_HINT}"
            )
        return session

    def current(self, requests: int = 1) -> ort.InferenceSession:
        """The session a run for ``requests`` requests starting now should use: the full pool
        alone, the twin while others are in the pipeline. A micro-batch serving several
        requests keeps the full pool where that pool has more than two threads (on a
        many-core host one thread would make the single batching thread the bottleneck; on
        two cores the full pool for batches was measured worse under overload, README
        "Performance")."""
        if self.narrow is None or self.load is None or not self.load.shared():
            return self.inner
        if requests > 1 and self.threads > 2:
            return self.inner
        return self.narrow

    @property
    def input_name(self) -> str:
        return str(self.inner.get_inputs()[0].name)

    def run(self, feed: dict[str, np.ndarray], requests: int = 1) -> list[np.ndarray]:
        return list(self.current(requests).run(None, feed))


def onnxruntime_version() -> str:
    return str(ort.__version__)
