"""The whole-registry scan: every pair of enrolled citizens whose faces are duplicates.

Each live template is searched against the others (top ``k`` neighbours, in batches through
one faiss call each); a pair at or above its duplicate bar is reported once, whichever side
found it, unless it was adjudicated as different people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fvs.dedup.rule import DuplicateRule
from fvs.store.index import TemplateIndex
from fvs.store.search import SearchIndex

BATCH = 512


@dataclass(frozen=True)
class DuplicatePair:
    citizen_a: str  # citizen_a < citizen_b
    citizen_b: str
    version_a: int
    version_b: int
    similarity: float
    score: float

    def as_dict(self) -> dict[str, object]:
        return {
            "citizen_a": self.citizen_a,
            "citizen_b": self.citizen_b,
            "version_a": self.version_a,
            "version_b": self.version_b,
            "similarity": round(self.similarity, 6),
            "score": round(self.score, 2),
        }


def scan(
    index: SearchIndex,
    rule: DuplicateRule,
    k: int = 5,
    cleared: set[tuple[str, str]] | None = None,
    progress: Callable[[int], object] | None = None,
) -> list[DuplicatePair]:
    """Duplicate pairs among ``index``'s live templates, best first; ``cleared``: pairs
    (low, high) adjudicated as different people, left out."""
    templates: TemplateIndex = index.templates
    cleared = cleared or set()
    found: dict[tuple[str, str], DuplicatePair] = {}
    size = templates.rows_used
    for start in range(0, size, BATCH):
        rows = np.arange(start, min(size, start + BATCH), dtype=np.int64)
        rows = rows[templates.live(rows)]
        if rows.size:
            probes = templates.gather(rows)
            owners = templates.owners(rows)
            versions = templates.versions_of(rows)
            answers = index.search_many(probes, k, exclude=owners)
            for i, candidates in enumerate(answers):
                if not candidates:
                    continue
                cand_rows = np.array([c.row for c in candidates], dtype=np.int64)
                vectors = templates.gather(cand_rows)
                sims = np.array([c.similarity for c in candidates])
                flags = rule.is_duplicate(probes[i], vectors, sims)
                me = f"{int(owners[i]):013d}"
                for j, cand in enumerate(candidates):
                    if not flags[j]:
                        continue
                    low, high = sorted((me, cand.citizen_id))
                    if (low, high) in cleared or (low, high) in found:
                        continue
                    mine = (me, int(versions[i]))
                    theirs = (cand.citizen_id, cand.version)
                    (a, va), (b, vb) = sorted((mine, theirs))
                    found[(low, high)] = DuplicatePair(
                        a,
                        b,
                        va,
                        vb,
                        cand.similarity,
                        rule.score(cand.similarity, probes[i], vectors[j]),
                    )
        if progress is not None:
            progress(int(min(size, start + BATCH) - start))
    return sorted(found.values(), key=lambda p: (-p.similarity, p.citizen_a, p.citizen_b))
