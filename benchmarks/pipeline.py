"""Pipeline: per-stage latency (decode, detect, quality, align, embed, score) and end to end
per image on real photos, against a naive sequential insightface pipeline (SCRFD at 640x640 +
ArcFaceONNX.get) timed in the same run; the detector sized to the image against 640x640; and
the in-process throughput with concurrent requests (micro-batched).

    .venv/bin/python benchmarks/pipeline.py [--photos DIR] [--small DIR] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine, write_json
from fvs.config import Settings
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import cosine

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def photos_in(folder: Path, limit: int) -> list[bytes]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return [p.read_bytes() for p in files[:limit]]


def naive_pipeline():  # type: ignore[no-untyped-def]
    """insightface as its README uses it: SCRFD at 640x640, ArcFaceONNX.get, default sessions."""
    from insightface.app.common import Face
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    from fvs.runtime.manifest import load_manifest

    manifest, folder = load_manifest(ROOT / "models", "buffalo_sc")
    det = SCRFD(model_file=str(folder / manifest.detector.file))
    det.prepare(-1, input_size=(640, 640))
    rec = ArcFaceONNX(model_file=str(folder / manifest.recognizer.file))
    rec.prepare(-1)

    def run(data: bytes) -> tuple[np.ndarray | None, dict[str, float]]:
        t0 = time.perf_counter()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        boxes, kps = det.detect(img, input_size=(640, 640), max_num=1, metric="max")
        t2 = time.perf_counter()
        vector = None
        if boxes.shape[0]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # skimage estimate in norm_crop
                vector = rec.get(img, Face(bbox=boxes[0, :4], kps=kps[0], det_score=boxes[0, 4]))
            vector = vector / np.linalg.norm(vector)
        t3 = time.perf_counter()
        return vector, {
            "decode_ms": (t1 - t0) * 1e3,
            "detect_ms": (t2 - t1) * 1e3,
            "align_embed_ms": (t3 - t2) * 1e3,
            "total_ms": (t3 - t0) * 1e3,
        }

    return run


def median_of(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def bench_stages(pipeline: FacePipeline, naive, photos: list[bytes], reps: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    ours, theirs, agreement = [], [], []
    template = pipeline.extract(photos[0]).embedding
    for _ in range(reps):
        for data in photos:  # interleaved: both see the same machine state
            probe = pipeline.extract(data)
            t = time.perf_counter()
            cosine(probe.embedding, template)
            score_ms = (time.perf_counter() - t) * 1e3
            row = {k: v for k, v in vars(probe.timings).items()}
            row["score_ms"] = score_ms
            ours.append(row)
            vector, timing = naive(data)
            theirs.append(timing)
            if vector is not None:
                agreement.append(cosine(probe.embedding, vector.astype(np.float32)))
    stages = [
        "decode_ms",
        "detect_ms",
        "quality_ms",
        "align_ms",
        "embed_ms",
        "score_ms",
        "total_ms",
    ]
    result = {
        "images": len(photos),
        "reps": reps,
        "ours_median": {s: median_of(ours, s) for s in stages},
        "naive_median": {
            s: median_of(theirs, s)
            for s in ["decode_ms", "detect_ms", "align_embed_ms", "total_ms"]
        },
        "embedding_cosine_ours_vs_naive_min": min(agreement) if agreement else None,
    }
    result["end_to_end_ratio_ours_over_naive"] = (
        result["ours_median"]["total_ms"] / result["naive_median"]["total_ms"]
    )
    return result


def bench_detector_sizing(pipeline: FacePipeline, photos: list[bytes], reps: int) -> dict:  # type: ignore[type-arg]
    images = [pipeline.decode(d) for d in photos]
    det = pipeline.detector
    fixed = [(640, 640)]
    auto_ms, fixed_ms = [], []
    for _ in range(reps):
        for img in images:
            h, w = img.shape[:2]
            sizes = det.sizes_for(w, h)
            t = time.perf_counter()
            det._scrfd.detect(img, input_size=sizes, det_thresh=det.threshold)
            auto_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            det._scrfd.detect(img, input_size=fixed, det_thresh=det.threshold)
            fixed_ms.append((time.perf_counter() - t) * 1e3)
    h, w = images[0].shape[:2]
    return {
        "image_size": f"{w}x{h}",
        "sizes_used": det.sizes_for(w, h),
        "auto_median_ms": statistics.median(auto_ms),
        "fixed_640_median_ms": statistics.median(fixed_ms),
        "ratio_auto_over_640": statistics.median(auto_ms) / statistics.median(fixed_ms),
    }


def bench_throughput(
    pipeline: FacePipeline, photos: list[bytes], seconds: float, threads: list[int]
) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for n in threads:
        done = 0
        stop = time.perf_counter() + seconds
        if pipeline.batcher is not None:
            pipeline.batcher.batches.clear()

        def worker(k: int, stop: float = stop) -> int:
            count = 0
            while time.perf_counter() < stop:
                pipeline.extract(photos[(k + count) % len(photos)])
                count += 1
            return count

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            done = sum(pool.map(worker, range(n)))
        elapsed = time.perf_counter() - start
        batches = pipeline.batcher.batches if pipeline.batcher is not None else []
        out.append(
            {
                "threads": n,
                "images": done,
                "images_per_s": done / elapsed,
                "mean_batch": float(np.mean(batches)) if batches else 1.0,
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_photos = SHARED / "sample-faces" if SHARED.exists() else ROOT / "tests" / "data"
    p.add_argument("--photos", type=Path, default=default_photos)
    p.add_argument(
        "--small",
        type=Path,
        default=SHARED / "lfw-view1-train" / "images",
        help="250x250 photos for the detector-sizing comparison",
    )
    p.add_argument("--limit", type=int, default=15)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    settings = Settings()
    pipeline = FacePipeline.load(
        settings.model, settings.pipeline, settings.quality, settings.score
    )
    pipeline.warm_up(2)
    naive = naive_pipeline()
    photos = photos_in(args.photos, args.limit)
    for data in photos[:2]:
        naive(data)
    stages = bench_stages(pipeline, naive, photos, args.reps)
    small_photos = (
        photos_in(args.small, 40)
        if args.small.exists()
        else [
            cv2.imencode(
                ".jpg",
                cv2.resize(
                    cv2.imdecode(np.frombuffer(photos[0], np.uint8), cv2.IMREAD_COLOR), (250, 250)
                ),
            )[1].tobytes()
        ]
    )
    sizing = bench_detector_sizing(pipeline, small_photos, args.reps)
    small_stages = bench_stages(pipeline, naive, small_photos[:20], 1)
    throughput = bench_throughput(pipeline, photos, args.seconds, args.threads)
    naive_seq = 1000.0 / stages["naive_median"]["total_ms"]
    best = max(t["images_per_s"] for t in throughput)
    payload = {
        "benchmark": "pipeline",
        "machine": machine(),
        "parameters": {k: str(v) for k, v in vars(args).items()}
        | {"pipeline": settings.pipeline.model_dump(), "model": pipeline.info.model_id},
        "large_photos": stages,
        "small_photos": small_stages,
        "detector_sizing": sizing,
        "throughput": throughput,
        "naive_sequential_images_per_s": naive_seq,
        "best_in_process_images_per_s": best,
        "best_over_naive": best / naive_seq,
    }
    path = write_json("pipeline", payload, args.out)
    o, n = stages["ours_median"], stages["naive_median"]
    print(
        f"large photos ({stages['images']}), median ms: ours decode {o['decode_ms']:.1f} "
        f"detect {o['detect_ms']:.1f} quality {o['quality_ms']:.2f} align {o['align_ms']:.2f}"
        f" embed {o['embed_ms']:.1f} score {o['score_ms']:.4f} total {o['total_ms']:.1f}  |  "
        f"naive decode {n['decode_ms']:.1f} detect {n['detect_ms']:.1f} align+embed "
        f"{n['align_embed_ms']:.1f} total {n['total_ms']:.1f}  |  ratio "
        f"{stages['end_to_end_ratio_ours_over_naive']:.2f}"
    )
    so, sn = small_stages["ours_median"], small_stages["naive_median"]
    print(
        f"small photos: ours total {so['total_ms']:.1f} ms vs naive {sn['total_ms']:.1f} ms "
        f"(ratio {small_stages['end_to_end_ratio_ours_over_naive']:.2f})"
    )
    print(
        f"detector on {sizing['image_size']} at {sizing['sizes_used']}: "
        f"{sizing['auto_median_ms']:.2f} ms vs 640x640 {sizing['fixed_640_median_ms']:.2f} ms "
        f"= {100 * sizing['ratio_auto_over_640']:.0f} %"
    )
    for t in throughput:
        print(
            f"in-process, {t['threads']} threads: {t['images_per_s']:.1f} images/s "
            f"(mean embed batch {t['mean_batch']:.2f})"
        )
    print(
        f"naive sequential {naive_seq:.1f} images/s; best in-process {best:.1f} "
        f"(x{best / naive_seq:.2f})"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
