"""A template index snapshot of N rows for a store that holds fewer: the index of the data
directory's registry (its real rows, from its snapshot or the store) padded with synthetic
rows to N, sealed and bound to that store as a server would write it. A server started on
that data directory then loads N templates from the snapshot: the start-up time and memory
of an N-template server from its snapshot, without seeding N citizens first (the padding
rows answer for no citizen in the store; the real rows answer as before).

    python benchmarks/index_snapshot.py --data-dir /tmp/fvs-1m --rows 10000000
    python benchmarks/serving.py --data-dir /tmp/fvs-1m
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.serving import _status_kb
from fvs.config import Settings
from fvs.runtime.manifest import load_manifest
from fvs.store.factory import open_registry, open_snapshots
from fvs.store.synthetic import template_chunk

BLOCK = 65536
PAD_BASE = 9_000_000_000_000  # synthetic citizen numbers: 13 digits, outside real IDs' use


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    settings = Settings()
    settings.store.data_dir = args.data_dir
    manifest, _ = load_manifest(settings.model.models_dir, settings.model.pack)
    model_id, dim = manifest.model_id, manifest.recognizer.embedding_size
    encoding = settings.store.template_encoding
    store = open_registry(settings.store)
    snaps = open_snapshots(settings.store, store)
    assert snaps is not None
    start = time.perf_counter()
    index = snaps.open_index(model_id, dim, encoding)
    real = len(index)
    opened_s = time.perf_counter() - start
    block = template_chunk(0, BLOCK, dim, seed=4242)  # one block, reused: content is moot
    start = time.perf_counter()
    for first in range(real, args.rows, BLOCK):
        n = min(BLOCK, args.rows - first)
        ids = [str(PAD_BASE + k) for k in range(first, first + n)]
        index.put_many(ids, np.roll(block, first, axis=0)[:n], [1] * n)
    padded_s = time.perf_counter() - start
    start = time.perf_counter()
    assert snaps.save()
    saved_s = time.perf_counter() - start
    path = snaps.path(model_id, encoding)
    result = {
        "data_dir": str(args.data_dir),
        "real_rows": real,
        "rows": len(index),
        "index_from": snaps.source,
        "index_s": round(opened_s, 1),
        "pad_s": round(padded_s, 1),
        "save_s": round(saved_s, 1),
        "snapshot_bytes": path.stat().st_size,
        "peak_rss_mib": round(_status_kb(os.getpid(), "VmHWM") / 1024, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
