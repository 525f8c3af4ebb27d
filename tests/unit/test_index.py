from pathlib import Path

import numpy as np
import pytest

from fvs.store.index import TemplateIndex
from fvs.store.sqlite import SqliteStore
from fvs.store.synthetic import minimal_citizen, random_templates, synthetic_citizens

VECTORS = random_templates(50, 512, seed=3)
IDS = [c.citizen_id for c in synthetic_citizens(50, seed=3)]


def test_bulk_index_scores_like_a_dot_product() -> None:
    index = TemplateIndex.from_vectors("m@1", IDS, VECTORS)
    probe = random_templates(1, 512, seed=9)[0]
    for k in (0, 17, 49):
        similarity, version = index.score(IDS[k], probe)
        assert similarity == pytest.approx(float(VECTORS[k] @ probe), abs=1e-6)
        assert version == 1
    assert index.score("1234545678781", probe) is None
    many = index.score_many([IDS[3], "1234545678781", IDS[4]], np.stack([probe] * 3))
    assert many[0] == pytest.approx(float(VECTORS[3] @ probe), abs=1e-6)
    assert np.isnan(many[1])


def test_put_replaces_grows_and_remove_forgets() -> None:
    index = TemplateIndex("m@1", 512, capacity=16)
    for k in range(40):  # grows past the first capacity twice
        index.put(IDS[k], VECTORS[k], 1)
    index.put(IDS[0], VECTORS[45], 2)
    vector, version = index.lookup(IDS[0])
    assert version == 2 and np.array_equal(vector, VECTORS[45])
    assert np.array_equal(index.lookup(IDS[39])[0], VECTORS[39])
    index.remove(IDS[5])
    assert index.lookup(IDS[5]) is None
    assert len(index) == 39


def test_memory_mapped_index(tmp_path: Path) -> None:
    index = TemplateIndex.from_vectors("m@1", IDS, VECTORS, memmap_path=tmp_path / "t")
    assert isinstance(index.matrix, np.memmap)
    index.put(IDS[0], VECTORS[1], 2)  # grows into a new file
    assert np.array_equal(index.lookup(IDS[0])[0], VECTORS[1])
    assert np.array_equal(index.lookup(IDS[2])[0], VECTORS[2])


def test_built_from_the_store_for_one_model(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    citizens = list(synthetic_citizens(50, seed=3))
    store.add_citizens(citizens, zip(IDS, VECTORS, strict=True), "m@1")
    store.add_template(IDS[0], "m@1", VECTORS[49])  # version 2 replaces version 1
    other = "1234545678781"
    store.add_template(other, "other@2", VECTORS[0], create=minimal_citizen(other))
    index = TemplateIndex.from_store(store, "m@1", 512)
    assert len(index) == 50
    vector, version = index.lookup(IDS[0])
    assert version == 2 and np.array_equal(vector, VECTORS[49])
    assert index.lookup(other) is None  # another model's template is not indexed
    store.close()
