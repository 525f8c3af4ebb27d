"""Write the hostile image corpus (tests/hostile_images.py) to tests/data/hostile/.

Usage: python scripts/make_hostile_corpus.py [OUT_DIR]. Deterministic; every file is under
400 KB. The replay test (tests/unit/test_hostile_corpus.py) checks the committed files and
the generator agree, and that each file gets a precise refusal or a clean decode.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.hostile_images import corpus

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "hostile"
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(corpus().items()):
        (out / name).write_bytes(data)
        print(f"{len(data):>8}  {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
