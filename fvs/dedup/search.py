"""The duplicate search a server runs: the faiss index over its template index, the rule, and
the adjudicated pairs to leave out.

The index is built when the model is loaded: at once for a registry the flat kind covers,
in the background above that (enrolments are answered DUPLICATE_SEARCH_UNAVAILABLE, with a
retry delay, until it is ready; verifications never wait for it). A rebuild (``rebuild``)
makes a fresh index beside the live one, which keeps answering until the swap: a search never
sees half an index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from fvs.config import DedupSettings
from fvs.dedup.rule import DuplicateRule
from fvs.domain import DuplicateMatch
from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.score import ScoreMapping
from fvs.store.duplicates import DuplicateCases
from fvs.store.index import TemplateIndex
from fvs.store.search import SearchIndex, SearchParams

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
RETRY_WHILE_BUILDING_S = 5.0


def params_of(settings: DedupSettings) -> SearchParams:
    return SearchParams(
        kind=settings.index_kind,
        flat_max=settings.flat_max,
        nprobe=settings.nprobe,
        shortlist=settings.shortlist,
    )


class DuplicateSearch:
    def __init__(self, settings: DedupSettings, cases: DuplicateCases | None) -> None:
        self.settings = settings
        self.cases = cases
        self.rule: DuplicateRule | None = None
        self._index: SearchIndex | None = None
        self._building: threading.Thread | None = None
        self.failure: str | None = None  # why the index could not be built
        self.source = ""  # "snapshot" | "built": where the live index came from
        # called (on the building thread) when a background build or rebuild is swapped in:
        # the server takes a snapshot then, so that the next start loads this index
        self.on_built: Callable[[], object] | None = None
        # An enrolment's check and its store write happen under this lock, so that two
        # enrolments of one face on this server cannot both pass (README: across servers,
        # the registry scan catches the race).
        self.enrol_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.settings.mode != "off"

    @property
    def ready(self) -> bool:
        return self._index is not None and self.rule is not None

    @property
    def index(self) -> SearchIndex | None:
        return self._index

    def attach(self, templates: TemplateIndex, mapping: ScoreMapping) -> None:
        """Build the index over ``templates`` (a new template index replaces the old one:
        the old search index answers until the new one is built)."""
        if not self.enabled:
            return
        self.rule = DuplicateRule.from_mapping(mapping, self.settings.max_fmr)
        params = params_of(self.settings)
        if self._from_snapshot(templates, params):
            return
        self.source = "built"
        if params.resolve(templates.rows_used) == "flat":
            self._index = SearchIndex(templates, params).build()
            return
        self._building = threading.Thread(
            target=self._build, args=(templates, params), name="fvs-dedup-index", daemon=True
        )
        self._building.start()

    def _from_snapshot(self, templates: TemplateIndex, params: SearchParams) -> bool:
        """Take the search index saved beside ``templates``'s rows in its snapshot (rows
        written since, by the replay, are added at once); False (logged) when there is none
        or it does not fit, and the index is built instead."""
        data = templates.companions.pop("search", None)
        covered = templates.snapshot_meta.get("search_covered")
        if data is None or covered is None:
            return False
        start = time.perf_counter()
        try:
            self._index = SearchIndex.from_bytes(templates, data, int(covered), params)
        except (ValueError, RuntimeError) as exc:  # faiss raises RuntimeError on bad bytes
            log.warning("duplicate search index in the snapshot not used (%s); rebuilding", exc)
            return False
        self.source = "snapshot"
        log.info(
            "duplicate search index: %s over %d rows from the snapshot in %.1f s",
            self._index.kind,
            self._index.covered,
            time.perf_counter() - start,
        )
        return True

    def companions(
        self, templates: TemplateIndex
    ) -> tuple[dict[str, npt.NDArray[np.uint8]], dict[str, Any]]:
        """What to save beside ``templates``'s rows in its snapshot: this search index, when
        it indexes those very rows (fvs.store.index_snapshot.IndexSnapshots.companions)."""
        index = self._index
        if index is None or index.templates is not templates:
            return {}, {}
        data, covered = index.serialised()
        return {"search": data}, {"search_covered": covered, "search_kind": index.kind}

    def _build(self, templates: TemplateIndex, params: SearchParams) -> None:
        try:
            self._index = SearchIndex(templates, params).build()
        except Exception as exc:  # reported on every enrolment until fixed
            self.failure = str(exc)
            log.exception("duplicate search index: build failed")
            return
        if self.on_built is not None:
            self.on_built()

    def needs_rebuild(self) -> bool:
        """When the live index has drifted from what a fresh build would be: a quarter of
        its rows dead (replaced or erased templates), or the registry grown past what its
        kind was chosen for (flat -> PQ), or a trained index (PQ, IVF) grown fourfold since
        it was trained (codebooks from too few rows)."""
        index = self._index
        if index is None:
            return False
        rows = index.templates.rows_used
        if rows >= 1000 and index.dead > rows // 4:
            return True
        if index.params.resolve(rows) != index.kind:
            return True
        return index.kind in ("ivf", "pq") and rows > 4 * index.trained_on

    def maybe_rebuild(self) -> bool:
        """Start a background rebuild when :meth:`needs_rebuild` (one at a time); searches
        keep using the live index until the new one is swapped in. True if one started."""
        if self._building is not None and self._building.is_alive():
            return False
        if not self.needs_rebuild():
            return False
        current = self._index
        assert current is not None
        self._building = threading.Thread(
            target=self._build,
            args=(current.templates, current.params),
            name="fvs-dedup-rebuild",
            daemon=True,
        )
        self._building.start()
        return True

    def wait_ready(self, timeout: float | None = None) -> bool:
        if self._building is not None:
            self._building.join(timeout)
        return self.ready

    def _live(self) -> tuple[SearchIndex, DuplicateRule]:
        index, rule = self._index, self.rule
        if index is None or rule is None:
            why = f": {self.failure}" if self.failure else " (it is being built)"
            error = FvsError(
                ErrorCode.DUPLICATE_SEARCH_UNAVAILABLE,
                f"the duplicate search index is not ready{why}; retry shortly",
            )
            error.retry_after_s = RETRY_WHILE_BUILDING_S
            raise error
        return index, rule

    def search(self, probe: Vector, k: int, exclude: str | None = None) -> list[DuplicateMatch]:
        """The ``k`` enrolled citizens most like ``probe`` (best first), each marked whether
        it is at or above the duplicate threshold."""
        index, rule = self._live()
        found = index.search(probe, k, exclude=exclude)
        if not found:
            return []
        rows = np.array([c.row for c in found], dtype=np.int64)
        vectors = index.templates.gather(rows)
        sims = np.array([c.similarity for c in found])
        flags = rule.is_duplicate(probe, vectors, sims)
        return [
            DuplicateMatch(
                citizen_id=c.citizen_id,
                similarity=c.similarity,
                score=rule.score(c.similarity, probe, vectors[i]),
                template_version=c.version,
                duplicate=bool(flags[i]),
            )
            for i, c in enumerate(found)
        ]

    def duplicates_of(self, citizen_id: str, probe: Vector) -> list[DuplicateMatch]:
        """Other citizens whose enrolled face is a duplicate of ``probe`` (best first),
        leaving out pairs adjudicated as different people."""
        matches = [
            m
            for m in self.search(probe, self.settings.candidates, exclude=citizen_id)
            if m.duplicate
        ]
        if matches and self.cases is not None:
            cleared = self.cases.distinct_from(citizen_id, (m.citizen_id for m in matches))
            matches = [m for m in matches if m.citizen_id not in cleared]
        return matches
