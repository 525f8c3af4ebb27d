"""Cosine error of the compact template encodings (fvs.store.codec) on real embeddings: the
embedding cache `fvs eval` leaves (e.g. of LFW), every pair of embedded images scored with the
enrolled side stored as f16 / i8 (as verification does) and with both sides stored, against
float32. LFW accuracy with each encoding comes from `fvs eval --template-encoding`.

    python benchmarks/template_encoding.py .fvs-cache/buffalo_sc-*.npz \
        --out docs/benchmarks/template_encoding.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fvs.store import codec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cache", type=Path, help="an fvs eval embedding cache (.npz)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    z = np.load(args.cache)
    ok = np.array([not r for r in z["reasons"]])
    v = z["vectors"][ok].astype(np.float32)
    exact = v @ v.T
    iu = np.triu_indices(v.shape[0], k=1)
    result: dict[str, object] = {"embeddings": int(v.shape[0]), "pairs": int(iu[0].size)}
    for enc in ("f16", "i8"):
        stored = codec.decode_many([codec.encode(x, enc) for x in v], enc, v.shape[1])
        one = np.abs(stored @ v.T - exact)[iu]  # enrolled side stored, probe as computed
        both = np.abs(stored @ stored.T - exact)[iu]
        result[enc] = {
            "bytes_per_template": len(codec.encode(v[0], enc)),
            "enrolled_side": {
                "mean": float(one.mean()),
                "p99": float(np.percentile(one, 99)),
                "max": float(one.max()),
            },
            "both_sides": {"mean": float(both.mean()), "max": float(both.max())},
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
