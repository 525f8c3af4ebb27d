"""SearchIndex's product-quantised brute-force kind (``pq``, the ``auto`` choice above
``flat_max``): finds a planted duplicate among random templates, follows new rows and
replaced versions, and survives serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from fvs.store.index import TemplateIndex
from fvs.store.search import SearchIndex, SearchParams
from fvs.store.synthetic import template_chunk


def _ids(n: int, base: int = 10**12) -> list[str]:
    return [f"{base + k:013d}" for k in range(n)]


def test_pq_finds_a_planted_duplicate_and_follows_the_template_index() -> None:
    v = template_chunk(0, 5000, 512, 0)
    templates = TemplateIndex.from_vectors("m@0", _ids(5000), v, encoding="i8")
    assert SearchParams().resolve(5000) == "flat"
    assert SearchParams(flat_max=1000).resolve(5000) == "pq"
    search = SearchIndex(templates, SearchParams(kind="pq")).build()
    assert search.kind == "pq"
    rng = np.random.default_rng(0)
    face = v[123] + 0.8 * rng.standard_normal(512).astype(np.float32) / np.sqrt(512)
    face /= np.linalg.norm(face)
    best = search.search(face, 3)
    assert best[0].citizen_id == _ids(5000)[123]
    assert best[0].similarity == pytest.approx(float(face @ templates.gather(np.array([123]))[0]))
    # a new version takes a new row: the old row never comes back
    templates.put(_ids(5000)[123], v[7], 2)
    found = search.search(v[7], 2)
    assert [(c.citizen_id, c.version) for c in found] == [
        (_ids(5000)[123], 2),
        (_ids(5000)[7], 1),
    ]
    restored = SearchIndex.from_bytes(templates, search.to_bytes(), search.covered)
    assert restored.kind == "pq"
    assert [c.row for c in restored.search(v[7], 2)] == [c.row for c in found]


def test_pq_needs_enough_templates_to_train() -> None:
    v = template_chunk(0, 100, 512, 0)
    templates = TemplateIndex.from_vectors("m@0", _ids(100), v)
    with pytest.raises(ValueError, match="1024"):
        SearchIndex(templates, SearchParams(kind="pq")).build()
