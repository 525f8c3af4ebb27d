"""The face pipeline: photo bytes -> the subject's face and its embedding, timed per stage."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from fvs.config import ModelSettings, PipelineSettings, QualitySettings, ScoreSettings
from fvs.domain import Embedding, Face, Probe, Timings
from fvs.errors import ConfigError
from fvs.observability import hooks
from fvs.pipeline import quality
from fvs.pipeline.align import align
from fvs.pipeline.batching import MicroBatcher
from fvs.pipeline.decode import BgrImage, ImageLimits, decode, decode_scaled
from fvs.pipeline.detector import FaceDetector, landmarks_array, select_subject
from fvs.pipeline.embedder import Embedder
from fvs.pipeline.quality import QualityMinimums
from fvs.pipeline.score import CalibratedMapping, load_calibration
from fvs.runtime.manifest import Manifest, load_manifest, read_verified
from fvs.runtime.sessions import Load, Session, SessionOptions, resolve_providers

log = logging.getLogger(__name__)

Stage = Literal["verify", "enroll", "measure"]


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class ModelInfo:
    pack: str
    model_id: str
    providers: list[str]
    detector_sha256: str
    recognizer_sha256: str


class FacePipeline:
    """decode -> detect -> select the subject -> align -> embed.

    Thread-safe: onnxruntime sessions may be run concurrently, and no per-call state is kept.
    """

    def __init__(
        self,
        manifest: Manifest,
        detector: FaceDetector,
        embedder: Embedder,
        settings: PipelineSettings,
        providers: list[str],
        minimums: QualitySettings | None = None,
        mapping: CalibratedMapping | None = None,
        load: Load | None = None,
    ) -> None:
        self.mapping = mapping  # the pack's FMR-anchored calibration, if it has one
        self.requests = load or Load()  # requests in the pipeline now (picks the threads)
        batching = settings.batching
        self.batcher = (
            MicroBatcher(
                embedder.embed, batching.max_batch_size, batching.max_wait_ms, self.requests
            )
            if batching.enabled and batching.max_batch_size > 1
            else None
        )
        limits = minimums or QualitySettings()
        self.minimums: dict[str, QualityMinimums] = {
            "verify": QualityMinimums(**limits.verify.model_dump()),
            "enroll": QualityMinimums(**limits.enroll.model_dump()),
        }
        self.manifest = manifest
        self.detector = detector
        self.embedder = embedder
        self.settings = settings
        self.limits = ImageLimits(
            settings.max_image_bytes,
            settings.max_image_pixels,
            settings.max_decoded_bytes,
            settings.reduce_above_pixels,
        )
        self.info = ModelInfo(
            pack=manifest.id,
            model_id=manifest.model_id,
            providers=providers,
            detector_sha256=manifest.detector.sha256,
            recognizer_sha256=manifest.recognizer.sha256,
        )

    @classmethod
    def load(
        cls,
        model: ModelSettings,
        settings: PipelineSettings,
        minimums: QualitySettings | None = None,
        score: ScoreSettings | None = None,
        trt_cache_dir: Path | None = None,
    ) -> FacePipeline:
        """Load and verify the model pack named in ``model``; raises ConfigError.
        ``trt_cache_dir``: TensorRT's engine cache when ``model`` names none."""
        manifest, folder = load_manifest(model.models_dir, model.pack)
        options = SessionOptions(
            providers=resolve_providers(model.providers),
            intra_op_threads=model.intra_op_threads,
            allow_spinning=model.allow_spinning,
            trt_fp16=model.trt_fp16,
            trt_cache_dir=model.trt_cache_dir or trt_cache_dir,
            device_id=model.device_id,
            gpu_mem_limit_mb=model.gpu_mem_limit_mb,
            adaptive_threads=model.adaptive_threads,
        )
        load = Load()
        det_weights = read_verified(folder, manifest.detector.file, manifest.detector.sha256)
        rec_weights = read_verified(folder, manifest.recognizer.file, manifest.recognizer.sha256)
        det_session = Session(det_weights.data, f"{manifest.id}/detector", options, load)
        rec_session = Session(rec_weights.data, f"{manifest.id}/recognizer", options, load)
        detector = FaceDetector(
            det_session.inner,
            manifest.detector,
            settings.detection_threshold,
            sizes=settings.detector_sizes,
            max_size=settings.detector_max_size,
            coarse_size=settings.detector_coarse_size,
            narrow_session=det_session.narrow,
            pick=det_session.current,
        )
        embedder = Embedder(rec_session, manifest.recognizer)
        log.info(
            "loaded model pack %s (%s) on %s", manifest.id, manifest.model_id, det_session.providers
        )
        mapping = _calibration(model, manifest, score or ScoreSettings())
        return cls(
            manifest, detector, embedder, settings, det_session.providers, minimums, mapping, load
        )

    def warm_up(self, runs: int) -> None:
        """Run every detector size and the embedder so the first request pays no setup cost."""
        blanks = [np.full((side, side, 3), 127, dtype=np.uint8) for side in (250, 640)]
        crop = np.full((self.manifest.recognizer.input_size,) * 2 + (3,), 127, dtype=np.uint8)
        for _ in range(runs):
            for blank in blanks:
                self.detector.detect(blank)
            self.embedder.embed([crop])

    def decode(self, data: bytes) -> BgrImage:
        return decode(data, self.limits)

    def find_subject(self, image: BgrImage, factor: int = 1) -> Face:
        """The subject's face in the photo's own pixels (``image`` is the photo reduced by
        ``factor``: 1, or 2/4/8 for a large JPEG decoded reduced)."""
        faces = self.detector.detect(image)
        if factor != 1:
            faces = [_scaled(face, factor) for face in faces]
        height, width = image.shape[:2]
        return select_subject(
            faces,
            width * factor,
            height * factor,
            self.settings.multiple_faces_ratio,
            self.settings.min_face_px,
        )

    def extract(self, data: bytes, purpose: Stage = "verify") -> Probe:
        """The subject's face, its quality and (D,) float32 L2-normalised embedding.

        ``purpose`` picks the quality minimums: "verify" for probes, "enroll" (stricter) for
        templates, "measure" to measure quality without refusing.
        """
        with self.requests:  # counted for the batcher and the sessions' thread choice
            return self._extract(data, purpose)

    def embed_one(self, crop: BgrImage) -> Embedding:
        """(D,) embedding of one aligned crop (micro-batched with concurrent requests)."""
        if self.batcher is not None:
            return self.batcher.embed(crop)
        vector: Embedding = self.embedder.embed([crop])[0]
        hooks.batch(1)
        return vector

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def _extract(self, data: bytes, purpose: Stage) -> Probe:
        timings = Timings()
        start = t = time.perf_counter()
        image, factor = decode_scaled(data, self.limits)
        timings.decode_ms = _ms(t)
        hooks.stage("decode", timings.decode_ms / 1000.0)
        t = time.perf_counter()
        face = self.find_subject(image, factor)
        timings.detect_ms = _ms(t)
        hooks.stage("detect", timings.detect_ms / 1000.0)
        t = time.perf_counter()
        points = (landmarks_array(face) / np.float32(factor)).astype(np.float32)
        crop = align(image, points, self.manifest.recognizer.input_size)
        timings.align_ms = _ms(t)
        hooks.stage("align", timings.align_ms / 1000.0)
        t = time.perf_counter()
        with hooks.timed("quality"):  # reported for refused probes too
            face_quality = quality.measure(face, crop)
            if purpose != "measure":
                quality.check(face_quality, self.minimums[purpose])
        timings.quality_ms = _ms(t)
        t = time.perf_counter()
        embedding = self.embed_one(crop)
        timings.embed_ms = _ms(t)
        hooks.stage("embed", timings.embed_ms / 1000.0)
        timings.total_ms = _ms(start)
        return Probe(face=face, embedding=embedding, timings=timings, quality=face_quality)


def _scaled(face: Face, factor: int) -> Face:
    """``face`` found in an image reduced by ``factor``, in the full image's pixels."""
    return Face(
        box=(
            face.box[0] * factor,
            face.box[1] * factor,
            face.box[2] * factor,
            face.box[3] * factor,
        ),
        landmarks=tuple((x * factor, y * factor) for x, y in face.landmarks),
        score=face.score,
    )


def calibration_path(model: ModelSettings) -> Path:
    return model.models_dir / f"{model.pack}.calibration.json"


def _calibration(
    model: ModelSettings, manifest: Manifest, score: ScoreSettings
) -> CalibratedMapping | None:
    path = score.calibration or calibration_path(model)
    if not path.exists():
        if score.require_calibration:
            raise ConfigError(f"no calibration at {path} and one is required: run fvs calibrate")
        log.warning(
            "no calibration at %s: match scores use the provisional logistic mapping "
            "and claim no false-match rate",
            path,
        )
        return None
    mapping = load_calibration(path, manifest.recognizer.sha256)
    log.info("score calibration %s", mapping.id)
    return mapping
