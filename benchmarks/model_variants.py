"""Accuracy and speed of recogniser variants against the fp32 pack, in one run.

Variants: fp32 (the baseline), flip fusion (fp32 on the face and its mirror, added), int8
static (QDQ, per-channel, activation ranges calibrated on --calibration-dir faces), int8
dynamic and fp16 (for CUDA/TensorRT; run here on the CPU for its accuracy, its CPU speed
means nothing for a GPU). Faces are detected and aligned once with the fp32 pack, so the
figures isolate the recogniser; the fp16 detector is compared with the fp32 one on the same
photos (faces found, landmark shift in pixels). Accuracy: LFW 10-fold accuracy on the
listed pairs and TAR at FMR 1e-4 / 1e-3 over every cross-person pair of the dataset; speed:
the recogniser alone at batch 1 and 8, the variants interleaved so that machine noise hits
all alike, as ratios to fp32.

    python -m benchmarks.model_variants --lfw ../shared/data/lfw-view1-train \\
        --calibration-dir ../shared/data/utkface-adults/images \\
        --json docs/benchmarks/model_variants.json

Calibrate on data other than the evaluation photos (UTKFace chips here, LFW for evaluation).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine, write_json
from fvs.config import Settings
from fvs.errors import FvsError
from fvs.evaluation.dataset import IMAGE_SUFFIXES, Dataset, Errata, all_pairs, read_lfw_pairs
from fvs.evaluation.metrics import kfold_accuracy, tar_at_fmr
from fvs.pipeline.align import align
from fvs.pipeline.detector import landmarks_array
from fvs.pipeline.embedder import Embedder
from fvs.pipeline.pipeline import FacePipeline
from fvs.runtime.manifest import load_manifest, read_verified, resolve_location
from fvs.runtime.quantize import quantize_recognizer, to_fp16, write_variant
from fvs.runtime.sessions import Session, SessionOptions


def crops_of(
    pipeline: FacePipeline, files: list[Path], marks: list[np.ndarray] | None = None
) -> tuple[np.ndarray, list[int]]:
    crops, kept = [], []
    for k, path in enumerate(files):
        try:
            image = pipeline.decode(path.read_bytes())
            face = pipeline.find_subject(image)
        except FvsError:
            continue
        crops.append(align(image, landmarks_array(face), 112))
        kept.append(k)
        if marks is not None:
            marks.append(landmarks_array(face))
    return np.stack(crops), kept


def landmark_shift(
    settings: Settings, files: list[Path], reference: list[np.ndarray]
) -> dict[str, Any]:
    """The fp16 pack's detector against fp32's on ``files``: faces found, landmark shift."""
    with tempfile.TemporaryDirectory(prefix="fvs-fp16-") as tmp:
        source, folder = load_manifest(settings.model.models_dir, settings.model.pack)
        write_variant(source, folder, Path(tmp), "fp16_bench", "fp16")
        half = settings.model_copy(deep=True)
        half.model.models_dir, half.model.pack = Path(tmp), "fp16_bench"
        pipeline = FacePipeline.load(half.model, half.pipeline)
        marks: list[np.ndarray] = []
        _, kept = crops_of(pipeline, files, marks)
        pipeline.close()
    shift = np.array([np.abs(m - reference[k]).max() for m, k in zip(marks, kept, strict=True)])
    return {
        "photos": len(files),
        "faces_found": len(kept),
        "landmark_shift_px_median": float(np.median(shift)),
        "landmark_shift_px_p99": float(np.percentile(shift, 99)),
        "landmark_shift_px_max": float(shift.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--calibration-dir", type=Path, required=True)
    ap.add_argument("--calibration-faces", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    settings = Settings()
    settings.model.providers = "cpu"
    settings.pipeline.batching.enabled = False
    pipeline = FacePipeline.load(settings.model, settings.pipeline)
    spec = pipeline.manifest.recognizer
    dataset = Dataset.scan(args.lfw / "images")
    files = [dataset.root / i for i in dataset.images]
    reference_marks: list[np.ndarray] = []
    crops, kept = crops_of(pipeline, files, reference_marks)
    assert len(kept) == len(dataset.images), "every LFW photo must give a face"
    calib_files = sorted(
        p for p in args.calibration_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    random.Random(0).shuffle(calib_files)
    calib, _ = crops_of(pipeline, calib_files[: args.calibration_faces + 20])
    calib = calib[: args.calibration_faces]
    pipeline.close()

    folder = resolve_location(pipeline.manifest.location, settings.model.models_dir)
    fp32 = read_verified(folder, spec.file, spec.sha256).data
    blobs = Embedder.preprocess_with(spec, list(calib))
    options = SessionOptions(providers=["CPUExecutionProvider"], intra_op_threads=1)
    weights = {
        "fp32": fp32,
        "int8_static": quantize_recognizer(fp32, "static", blobs),
        "int8_dynamic": quantize_recognizer(fp32, "dynamic"),
        "fp16": to_fp16(fp32),
    }
    embedders = {
        name: Embedder(Session(data, name, options), spec) for name, data in weights.items()
    }
    embedders["fp32_flip"] = Embedder(
        Session(fp32, "flip", options), spec.model_copy(update={"flip_fusion": True})
    )

    pairs = read_lfw_pairs(args.lfw / "pairsDevTrain.txt", dataset)
    errata = Errata.read(args.lfw / "LFW_ERRATA_files.tsv", [("Joseph_Blatter", "Sepp_Blatter")])
    index = dataset.index()
    pi = np.array([index[p.a] for p in pairs.pairs])
    pj = np.array([index[p.b] for p in pairs.pairs])
    labels = np.array([p.genuine for p in pairs.pairs])
    folds = np.array([p.fold for p in pairs.pairs])
    keep = np.array([not errata.excludes(i) for i in dataset.images])
    ai, aj, genuine = all_pairs(dataset, keep, errata)

    results: dict[str, Any] = {}
    reference = None
    for name, embedder in embedders.items():
        vectors = np.concatenate(
            [embedder.embed(list(crops[k : k + 32])) for k in range(0, len(crops), 32)]
        )
        if name == "fp32":
            reference = vectors
        assert reference is not None
        scores = vectors @ vectors.T
        g = scores[ai[genuine], aj[genuine]].astype(np.float64)
        im = scores[ai[~genuine], aj[~genuine]].astype(np.float64)
        results[name] = {
            "lfw_10fold_accuracy_pct": 100
            * kfold_accuracy(scores[pi, pj].astype(np.float64), labels, folds).mean,
            "tar_at_fmr_1e-4_pct": 100 * tar_at_fmr(g, im, 1e-4).tar,
            "tar_at_fmr_1e-3_pct": 100 * tar_at_fmr(g, im, 1e-3).tar,
            "min_cosine_to_fp32": float(np.min(np.sum(vectors * reference, axis=1))),
            "recogniser_bytes": len(weights.get(name, fp32)),
        }
        print(name, {k: round(v, 4) for k, v in results[name].items()}, flush=True)

    times: dict[str, dict[int, list[float]]] = {n: {1: [], 8: []} for n in embedders}
    for _ in range(args.repeats):
        for name, embedder in embedders.items():
            for size in (1, 8):
                start = time.perf_counter()
                embedder.embed(list(crops[:size]))
                times[name][size].append(time.perf_counter() - start)
    for name in embedders:
        for size in (1, 8):
            median = float(np.median(times[name][size][2:]))
            results[name][f"batch{size}_ms_median"] = 1000 * median
    for name in embedders:
        for size in (1, 8):
            results[name][f"batch{size}_speed_vs_fp32"] = (
                results["fp32"][f"batch{size}_ms_median"] / results[name][f"batch{size}_ms_median"]
            )
    base = results["fp32"]
    for name, r in results.items():
        r["accuracy_delta_points"] = r["lfw_10fold_accuracy_pct"] - base["lfw_10fold_accuracy_pct"]
        r["tar_1e-4_delta_points"] = r["tar_at_fmr_1e-4_pct"] - base["tar_at_fmr_1e-4_pct"]
        r["qualifies_as_cpu_default"] = bool(
            name.startswith("int8")
            and r["accuracy_delta_points"] >= -0.1
            and r["tar_1e-4_delta_points"] >= -0.3
            and r["batch1_speed_vs_fp32"] >= 1.4
        )
    detector_fp16 = landmark_shift(settings, files, reference_marks)
    print("fp16 detector", detector_fp16)
    payload = {
        "benchmark": "model_variants",
        "machine": machine(),
        "lfw": str(args.lfw),
        "images": len(crops),
        "calibration_dir": str(args.calibration_dir),
        "calibration_faces": int(calib.shape[0]),
        "variants": results,
        "detector_fp16_vs_fp32": detector_fp16,
    }
    path = write_json("model_variants", payload, args.json)
    print(f"{'variant':14} {'acc %':>7} {'TAR@1e-4':>9} {'b1 ms':>7} {'b1 x':>6} {'b8 x':>6}")
    for name, r in results.items():
        print(
            f"{name:14} {r['lfw_10fold_accuracy_pct']:7.3f} {r['tar_at_fmr_1e-4_pct']:9.3f}"
            f" {r['batch1_ms_median']:7.2f} {r['batch1_speed_vs_fp32']:6.2f}"
            f" {r['batch8_speed_vs_fp32']:6.2f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
