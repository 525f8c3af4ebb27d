"""Model pack variants on the real weights: flip fusion and an int8 recogniser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.runtime.manifest import load_manifest
from tests.conftest import DATA, photo


def _embeddings(pipeline: FacePipeline) -> dict[str, np.ndarray]:
    return {
        name: pipeline.extract(photo(name), "measure").embedding
        for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "biden2.jpg")
    }


def _quantize(
    tmp_path: Path, pack_id: str, mode: str, *more: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`fvs model quantize` of buffalo_sc into a copy of the models folder, which it returns
    with the finished command (asserted to have succeeded)."""
    models = tmp_path / "models"
    shutil.copytree(Settings().model.models_dir, models)
    done = subprocess.run(
        [
            sys.executable, "-m", "fvs", "model", "quantize", "--pack", "buffalo_sc",
            "--id", pack_id, "--mode", mode, *more, "--out", str(models),
        ],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "FVS_MODEL__MODELS_DIR": str(models)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return models, done


def test_flip_fusion_pack_is_another_embedding_space_close_to_the_plain_one(
    settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    settings = settings_factory()
    settings.model.pack = "buffalo_sc_flip"
    flip = FacePipeline.load(settings.model, settings.pipeline)
    try:
        assert flip.info.model_id.endswith("+flip")
        assert flip.info.model_id != pipeline.info.model_id  # never compared with plain ones
        plain, fused = _embeddings(pipeline), _embeddings(flip)
        for name in plain:
            assert abs(float(np.linalg.norm(fused[name])) - 1.0) < 1e-5
            assert 0.95 < float(fused[name] @ plain[name]) < 0.99999  # changed, not much
        assert float(fused["obama.jpg"] @ fused["obama2.jpg"]) > 0.5
        assert float(fused["obama.jpg"] @ fused["biden.jpg"]) < 0.2
        # one face alone and in a batch give the same fused embedding (mirror pairing)
        crops = [np.full((112, 112, 3), v, np.uint8) for v in (40, 200)]
        crops[0][:, :56] = 250
        batch = flip.embedder.embed(crops)
        assert np.allclose(batch[0], flip.embedder.embed(crops[:1])[0], atol=1e-5)
    finally:
        flip.close()


def test_quantize_makes_a_verified_int8_pack(
    tmp_path: Path, settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    """`fvs model quantize --mode static` on the committed photos: a pack with its own files,
    hashes and model id that loads, verifies its files, and still tells the two people apart."""
    models, done = _quantize(tmp_path, "sc_int8", "static", "--calibration-dir", str(DATA))
    used = re.search(r"calibrating on (\d+) faces", done.stdout)
    assert used is not None and int(used.group(1)) >= 4  # every committed face photo
    manifest, folder = load_manifest(models, "sc_int8")
    assert folder == models / "sc_int8"
    assert manifest.recognizer.file.endswith("_int8_static.onnx")
    settings = settings_factory()
    settings.model.models_dir = models
    settings.model.pack = "sc_int8"
    int8 = FacePipeline.load(settings.model, settings.pipeline)
    try:
        assert int8.info.model_id.startswith("sc_int8@")
        assert int8.info.recognizer_sha256 != pipeline.info.recognizer_sha256
        plain, quant = _embeddings(pipeline), _embeddings(int8)
        for name in plain:
            assert float(quant[name] @ plain[name]) > 0.85  # the same space, approximately
        assert float(quant["obama.jpg"] @ quant["obama2.jpg"]) > 0.5
        assert float(quant["biden.jpg"] @ quant["biden2.jpg"]) > 0.4
        assert float(quant["obama.jpg"] @ quant["biden.jpg"]) < 0.2
    finally:
        int8.close()
    (folder / manifest.recognizer.file).write_bytes(b"tampered")
    tampered = subprocess.run(
        [sys.executable, "-m", "fvs", "model", "show"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "FVS_MODEL__MODELS_DIR": str(models), "FVS_MODEL__PACK": "sc_int8"},
    )  # fmt: skip
    assert tampered.returncode != 0
    assert "sha256" in tampered.stderr


def test_fp16_pack_converts_both_networks_and_stays_in_the_same_space(
    tmp_path: Path, settings_factory: Callable[..., Settings], pipeline: FacePipeline
) -> None:
    """`fvs model quantize --mode fp16`: both networks in float16 (half the bytes), a pack of
    its own that runs here on the CPU and embeds the committed faces as fp32 does."""
    models, _ = _quantize(tmp_path, "sc_fp16", "fp16")
    manifest, folder = load_manifest(models, "sc_fp16")
    source, source_folder = load_manifest(Settings().model.models_dir, "buffalo_sc")
    for spec, original in (
        (manifest.detector, source.detector),
        (manifest.recognizer, source.recognizer),
    ):
        assert spec.file.endswith("_fp16.onnx") and spec.sha256 != original.sha256
        size = (folder / spec.file).stat().st_size
        assert size < 0.55 * (source_folder / original.file).stat().st_size
    settings = settings_factory()
    settings.model.models_dir = models
    settings.model.pack = "sc_fp16"
    fp16 = FacePipeline.load(settings.model, settings.pipeline)
    try:
        assert fp16.info.model_id.startswith("sc_fp16@")
        plain, half = _embeddings(pipeline), _embeddings(fp16)
        for name in plain:
            assert 0.999 < float(half[name] @ plain[name]) < 0.999999  # rounded, not copied
        genuine = float(half["obama.jpg"] @ half["obama2.jpg"])
        assert abs(genuine - float(plain["obama.jpg"] @ plain["obama2.jpg"])) < 0.01
    finally:
        fp16.close()
