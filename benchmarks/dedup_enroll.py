"""What the 1:N duplicate check adds to an enrolment (issue 9 target: <= 1.2x at 10^6 enrolled).

In process, the real pipeline on a committed photo: the service's template index is filled
with N synthetic templates (fvs.store.synthetic, as `fvs registry seed --with-templates`
makes) and the duplicate search index is built over them; then Enroll calls of one citizen
alternate between dedup.mode = refuse and off, so both sides see the same machine state (a
citizen re-enrolling is never its own duplicate, and each call searches all N + 1 rows).
The store itself holds only the enrolling citizen: what is measured is the search's cost.

    python benchmarks/dedup_enroll.py --templates 1000000 --calls 60 \
        --out docs/benchmarks/dedup_enroll.json
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import latency_stats, machine, write_json
from fvs.api.server import build_parts
from fvs.citizen_id import complete
from fvs.config import Settings
from fvs.domain import EnrollRequest
from fvs.pipeline.pipeline import FacePipeline
from fvs.store.synthetic import template_chunk

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "obama.jpg"
CITIZEN = complete("110000000001")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--templates", type=int, default=1_000_000)
    p.add_argument("--calls", type=int, default=60, help="Enroll calls per mode")
    p.add_argument("--encoding", default="i8", choices=["f32", "f16", "i8"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings()
        settings.store.data_dir = Path(tmp)
        settings.store.template_encoding = args.encoding  # type: ignore[assignment]
        settings.model.providers = "cpu"
        settings.dedup.mode = "refuse"
        parts = build_parts(settings)
        service = parts.service
        pipeline = FacePipeline.load(settings.model, settings.pipeline)
        service.set_pipeline(pipeline)
        assert service.index is not None and service.dedup is not None
        dim = pipeline.manifest.recognizer.embedding_size
        start = time.perf_counter()
        chunk = 100_000
        for first in range(0, args.templates, chunk):
            n = min(chunk, args.templates - first)
            ids = [f"{2_000_000_000_000 + first + i:013d}" for i in range(n)]
            service.index.put_many(ids, template_chunk(first, n, dim, 7), [1] * n)
        fill_s = time.perf_counter() - start
        start = time.perf_counter()
        service.dedup.attach(service.index, pipeline.mapping or service.fallback)
        assert service.dedup.wait_ready(3600), service.dedup.failure
        build_s = time.perf_counter() - start
        search = service.dedup.index
        assert search is not None
        image = PHOTO.read_bytes()
        request = EnrollRequest(CITIZEN, image, create_if_missing=True)
        for mode in ("off", "refuse"):  # warm both paths (and create the citizen)
            service.dedup.settings.mode = mode  # type: ignore[assignment]
            service.enroll(request)
        samples: dict[str, list[int]] = {"off": [], "refuse": []}
        for k in range(2 * args.calls):
            mode = ("off", "refuse")[k % 2]
            service.dedup.settings.mode = mode  # type: ignore[assignment]
            t = time.perf_counter_ns()
            result = service.enroll(request)
            samples[mode].append(time.perf_counter_ns() - t)
            assert not result.duplicates
        parts.close()

    off, on = latency_stats(samples["off"]), latency_stats(samples["refuse"])
    payload = {
        "benchmark": "dedup_enroll",
        "machine": machine(),
        "templates": args.templates,
        "encoding": args.encoding,
        "index": {
            "kind": search.kind,
            "nbytes": search.nbytes,
            "fill_s": round(fill_s, 2),
            "build_s": round(build_s, 2),
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "enroll_without_check": off,
        "enroll_with_check": on,
        "median_ratio": on["median_us"] / off["median_us"],
        "p99_ratio": on["p99_us"] / off["p99_us"],
        "target_median_ratio": 1.2,
        "mean_extra_ms": float(np.mean(samples["refuse"]) - np.mean(samples["off"])) / 1e6,
    }
    path = write_json("dedup_enroll", payload, args.out)
    print(
        f"{args.templates} templates ({search.kind}): Enroll median "
        f"{off['median_us'] / 1000:.1f} ms without the check, {on['median_us'] / 1000:.1f} ms "
        f"with it ({payload['median_ratio']:.3f}x); {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
