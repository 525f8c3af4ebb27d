"""Configuration, read once at start from FVS_* environment variables (nested with ``__``).

Examples: ``FVS_SERVER__ADDRESS=127.0.0.1:50051``, ``FVS_MODEL__PROVIDERS=cuda``,
``FVS_PIPELINE__MULTIPLE_FACES_RATIO=0.8``, ``FVS_STORE__DATA_DIR=/var/lib/fvs``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fvs.store.url import StoreLocation, parse_store_url

Providers = Literal["auto", "cpu", "cuda", "tensorrt"]


def default_workers(cores: int | None = None) -> int:
    """Worker threads for ``cores`` cores (default: this machine's): one more than the cores.
    With adaptive threads (ModelSettings.adaptive_threads) concurrent requests run one thread
    each, and the extra worker keeps the cores busy while another is in its Python, I/O or
    batching steps: measured on 2 cores, 3 workers gave 1.15x the throughput of 2 fixed-thread
    workers at 8 callers, with the same latency for a lone caller (README "Performance")."""
    return max(2, (cores or os.cpu_count() or 1) + 1)


class ServerSettings(BaseModel):
    address: str = "127.0.0.1:50051"
    # Threads that run inference and store calls off the event loop (default_workers).
    workers: int = Field(default_factory=default_workers, ge=1, le=256)
    # Seconds in-flight calls get to finish on shutdown.
    grace_s: float = Field(default=5.0, ge=0)
    # Admission (fvs/admission.py): a call that finds no worker free waits only while it can
    # still be answered in time: its expected wait (calls ahead x measured service time per
    # worker) plus its own service time within its gRPC deadline and within
    # max_queue_wait_ms (the queue bound, for callers without a deadline and as a cap for all;
    # not applied to the first 4 calls per worker); at most max_queue calls wait. Other calls
    # get RESOURCE_EXHAUSTED / OVERLOADED at once with a google.rpc.RetryInfo delay. Measured
    # on 2 cores: closed-loop callers up to 16 are never refused, and accepted calls under
    # overload are answered within about the bound.
    max_queue: int = Field(default=64, ge=0, le=100_000)
    max_queue_wait_ms: float = Field(default=1000.0, ge=0)
    # Seconds between checks of the audit trail and the stores for the health service (a call
    # that fails closed reports NOT_SERVING at once; the check reports SERVING again).
    health_probe_s: float = Field(default=2.0, gt=0, le=300)
    # Serving processes (`fvs serve --processes N`, fvs.api.group): N > 1 starts N children
    # sharing the port (SO_REUSEPORT), each with its own model sessions (onnxruntime threads:
    # the cores divided by N) and template index, state shared through the store. Default by
    # measurement on 2 cores (README "Performance").
    processes: int = Field(default=1, ge=1, le=64)
    # Share the port with other FVS processes (SO_REUSEPORT, multi-process serving); off, a
    # taken address is an error at start.
    reuse_port: bool = False
    # Largest gRPC message accepted (bytes); images are further limited by the pipeline.
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


class ModelSettings(BaseModel):
    # Model pack id: the manifest models/<pack>.json.
    pack: str = "buffalo_sc"
    # Folder holding manifests (and the weight files of packs that are not shipped in a wheel).
    models_dir: Path = Path(__file__).resolve().parent.parent / "models"
    providers: Providers = "auto"
    # onnxruntime intra-op threads per session; 0 lets onnxruntime decide.
    intra_op_threads: int = Field(default=0, ge=0, le=256)
    # CPU: a lone request runs on intra_op_threads, concurrent requests each on one thread of
    # their own (every session gets a one-thread twin; fvs.runtime.sessions.Load). Measured on
    # 2 cores: the same latency alone, more throughput under concurrency (README "Performance").
    adaptive_threads: bool = True
    # Thread-pool spinning burns cores other sessions need; off by default (measured ~1.5x
    # slower end to end with it on, two sessions on two cores).
    allow_spinning: bool = False
    warmup_runs: int = Field(default=2, ge=0, le=100)
    # TensorRT (providers = tensorrt): fp16 kernels, and where built engines are cached so that
    # a restart does not rebuild them (minutes per model; default DATA_DIR/trt-cache).
    trt_fp16: bool = True
    trt_cache_dir: Path | None = None
    # CUDA / TensorRT: which GPU, and the CUDA memory arena's limit (0: no limit).
    device_id: int = Field(default=0, ge=0, le=64)
    gpu_mem_limit_mb: int = Field(default=0, ge=0)


class BatchingSettings(BaseModel):
    """Dynamic micro-batching of the embedder across concurrent requests."""

    enabled: bool = True
    max_batch_size: int = Field(default=8, ge=1, le=256)
    # Longest a crop waits for others; never waits when no other request is in flight.
    max_wait_ms: float = Field(default=2.0, ge=0, le=100)


class PipelineSettings(BaseModel):
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=10_000)
    # Decoded pixels at their stored depth and channels (16-bit RGBA: 8 bytes a pixel) are
    # refused past this many bytes, from the header, before decoding (IMAGE_TOO_LARGE,
    # limit=decoded_bytes). With max_image_bytes and max_image_pixels it bounds a call's
    # decode memory (README "Security").
    max_decoded_bytes: int = Field(default=160 * 1024 * 1024, ge=1024 * 1024)
    # JPEGs over this many pixels are decoded at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling).
    reduce_above_pixels: int = Field(default=16_000_000, ge=1_000_000)
    # Detector input sizes (square, multiples of 32); the image is letterboxed into each and the
    # detections merged. Empty (the default) sizes the detector to the image: the long side
    # rounded up to a multiple of 32, at most detector_max_size, plus a detector_coarse_size
    # pass when that is more than twice as large, which finds faces that fill the frame
    # (SCRFD-500M misses faces blown up past ~330 px). A 250x250 photo is run at 256 only.
    detector_sizes: list[int] = Field(default_factory=list)
    detector_max_size: int = Field(default=640, ge=64, le=2048, multiple_of=32)
    detector_coarse_size: int = Field(default=160, ge=64, le=2048, multiple_of=32)
    detection_threshold: float = Field(default=0.5, gt=0, lt=1)
    # Reject with MULTIPLE_FACES when another face is at least this fraction as prominent as the
    # subject (prominence: face size discounted by distance from the image centre).
    multiple_faces_ratio: float = Field(default=0.7, gt=0, le=1)
    # Smallest face accepted (shorter side of the detected box, in pixels).
    min_face_px: int = Field(default=40, ge=8)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)

    @field_validator("detector_sizes")
    @classmethod
    def _sizes_are_strides(cls, sizes: list[int]) -> list[int]:
        for size in sizes:
            if size < 64 or size > 2048 or size % 32:
                raise ValueError(f"detector size {size} must be a multiple of 32 in 64..2048")
        return sizes


class QualityMinimumsSettings(BaseModel):
    inter_eye_px: float = Field(ge=0)
    sharpness: float = Field(ge=0)
    exposure_min: float = Field(ge=0, le=255)
    exposure_max: float = Field(ge=0, le=255)
    contrast: float = Field(ge=0)
    max_yaw_deg: float = Field(ge=0, le=90)
    max_pitch_deg: float = Field(ge=0, le=90)
    detection_score: float = Field(ge=0, le=1)


class QualitySettings(BaseModel):
    """Minimums a probe must reach (verify) and stricter ones for enrolment. Chosen by
    measurement on LFW (README "Quality gate"): every cut in the verify minimums cost genuine
    matches there, so they only refuse what the model cannot use."""

    verify: QualityMinimumsSettings = Field(
        default_factory=lambda: QualityMinimumsSettings(
            inter_eye_px=10,
            sharpness=10,
            exposure_min=25,
            exposure_max=235,
            contrast=8,
            max_yaw_deg=90,
            max_pitch_deg=60,
            detection_score=0.5,
        )
    )
    enroll: QualityMinimumsSettings = Field(
        default_factory=lambda: QualityMinimumsSettings(
            inter_eye_px=24,
            sharpness=25,
            exposure_min=40,
            exposure_max=220,
            contrast=15,
            max_yaw_deg=45,
            max_pitch_deg=35,
            detection_score=0.6,
        )
    )


class ScoreSettings(BaseModel):
    # The FMR-anchored calibration (`fvs calibrate`); default models/<pack>.calibration.json.
    calibration: Path | None = None
    # Refuse to start without a calibration (instead of the provisional logistic mapping).
    require_calibration: bool = False
    # Provisional mapping when there is no calibration:
    # match_score = 100 / (1 + exp(-slope * (cosine - midpoint))).
    midpoint: float = Field(default=0.30, gt=-1, lt=1)
    slope: float = Field(default=20.0, gt=0)


class AccessSettings(BaseModel):
    # Folder with server.pem, server.key and ca.pem (`fvs pki init`): mutual TLS.
    tls_dir: Path | None = None
    # Plaintext on loopback only, every call acting as the built-in development system.
    insecure: bool = False
    # Consent older than this is refused (CONSENT_REQUIRED, problem=expired).
    consent_max_age_s: int = Field(default=24 * 3600, ge=60)
    # Consent times up to this far in the future are tolerated (clock skew).
    consent_clock_skew_s: int = Field(default=300, ge=0, le=3600)


class DigitalIdSettings(BaseModel):
    # Against attribute guessing: at most this many NO_MATCH answers about one citizen for one
    # agency within the window; further checks of that citizen by that agency are refused
    # (ATTRIBUTE_GUESSING) until older answers leave the window. README "Digital ID".
    max_no_match: int = Field(default=10, ge=1, le=10_000)
    no_match_window_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)


class StoreSettings(BaseModel):
    # Where the registry, access rules and audit trail live (`fvs.store.url`):
    # sqlite:///DIR (default: data_dir) or postgresql://... (env FVS_STORE__URL).
    url: str | None = None
    # Local files: the SQLite databases when url is unset, and keys and caches in any case.
    data_dir: Path = Path("fvs-data")
    # The key file templates are sealed with (AES-256-GCM; `fvs registry new-key`), never in
    # the database. Default data_dir/keys/template.key, created on first start for a new
    # SQLite registry; PostgreSQL servers must all be given the same file.
    template_key_file: Path | None = None
    # How templates are stored (before encryption) and held in the index: f32, f16 or i8
    # (fvs.store.codec). i8 by measurement (README "Storage backends"): LFW accuracy unchanged,
    # cosine error <= 0.0022, and the only one whose index fits 10^7 templates in 8 GiB.
    template_encoding: Literal["f32", "f16", "i8"] = "i8"
    # PostgreSQL: connections per server (per component); default the workers plus two.
    pool_size: int = Field(default=0, ge=0, le=256)
    # PostgreSQL: how a server learns of other servers' enrolments and erasures: "notify"
    # (LISTEN/NOTIFY, with the change log read after every reconnect) or "poll" (the change
    # log read every poll_interval_s). README "Storage backends" has the measurement.
    sync: Literal["notify", "poll"] = "notify"
    poll_interval_s: float = Field(default=0.25, gt=0, le=60)
    # Start from a snapshot of the template index (data_dir/cache, sealed with the template
    # key) and the change log since, instead of reading every template: README "Storage
    # backends". One is taken after a full load, every snapshot_interval_s while templates
    # change, and at a graceful stop.
    index_snapshot: bool = True
    snapshot_interval_s: float = Field(default=1800, ge=1, le=7 * 86400)

    def key_file(self) -> Path:
        return self.template_key_file or self.data_dir / "keys" / "template.key"

    def location(self) -> StoreLocation:
        return parse_store_url(self.url, self.data_dir)


class ObservabilitySettings(BaseModel):
    """Metrics, logs and traces (README "Operations")."""

    # HOST:PORT of the Prometheus listener (GET /metrics); off when unset.
    metrics_address: str | None = None
    # Distinct agency codes that get their own metric label; later ones share "other".
    max_agency_labels: int = Field(default=100, ge=1, le=10_000)
    # OTLP/gRPC endpoint (e.g. http://127.0.0.1:4317) for OpenTelemetry spans; off when unset.
    otlp_endpoint: str | None = None
    service_name: str = "fvs"


class DedupSettings(BaseModel):
    """1:N duplicate search at enrolment (issue 9; README "Duplicate search")."""

    # refuse: an enrolment matching another citizen is refused (DUPLICATE_IDENTITY) and kept
    # as a case; flag: it is stored and the response lists the candidates; off: no search.
    mode: Literal["refuse", "flag", "off"] = "refuse"
    # False-match rate per comparison at which a pair counts as a duplicate, read through the
    # pack's calibration (chosen by `fvs eval-dedup` on LFW: README gives the figures).
    max_fmr: float = Field(default=1e-6, gt=0, lt=1)
    # Candidates reported (ErrorInfo counts all at or above the threshold among these).
    candidates: int = Field(default=5, ge=1, le=100)
    # The search index (fvs.store.search): flat float16 up to flat_max templates, 4-bit PQ
    # codes scanned in full above (IVF missed real duplicates at the threshold: README).
    index_kind: Literal["auto", "flat", "pq", "ivf"] = "auto"
    flat_max: int = Field(default=10_000, ge=0)
    nprobe: int = Field(default=0, ge=0)
    shortlist: int = Field(default=256, ge=1, le=100_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FVS_", env_nested_delimiter="__", extra="ignore")

    server: ServerSettings = Field(default_factory=ServerSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    digitalid: DigitalIdSettings = Field(default_factory=DigitalIdSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)

    def trt_cache_dir(self) -> Path:
        """Where TensorRT engines are cached: model.trt_cache_dir, else DATA_DIR/trt-cache."""
        return self.model.trt_cache_dir or self.store.data_dir / "trt-cache"
