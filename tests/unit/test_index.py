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


@pytest.mark.parametrize(
    ("encoding", "tolerance", "row_bytes"), [("f16", 1e-3, 1024), ("i8", 1e-2, 512)]
)
def test_compact_rows_score_within_their_quantisation_error(
    encoding: str, tolerance: float, row_bytes: int
) -> None:
    index = TemplateIndex.from_vectors("m@1", IDS, VECTORS, encoding=encoding)
    assert index.matrix.nbytes == 50 * row_bytes
    probes = random_templates(50, 512, seed=11)
    exact = np.einsum("ij,ij->i", VECTORS, probes)
    single = np.array([index.score(IDS[k], probes[k])[0] for k in range(50)])
    many = index.score_many(IDS, probes)
    assert np.max(np.abs(single - exact)) < tolerance
    assert np.allclose(many, single, atol=1e-5)
    vector, version = index.lookup(IDS[7])
    assert vector.dtype == np.float32 and version == 1
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    index.put(IDS[7], VECTORS[8], 2)  # grows, keeps versions and scales
    assert index.version_of(IDS[7]) == 2
    assert index.score(IDS[7], VECTORS[8])[0] == pytest.approx(1.0, abs=tolerance)
    assert index.score(IDS[9], VECTORS[9])[0] == pytest.approx(1.0, abs=tolerance)


@pytest.mark.parametrize("encoding", ["f32", "f16", "i8"])
def test_codec_round_trip(encoding: str) -> None:
    from fvs.errors import ErrorCode, FvsError
    from fvs.store import codec

    payloads = [codec.encode(v, encoding) for v in VECTORS]
    one = codec.decode(payloads[3], encoding, 512)
    many = codec.decode_many(payloads, encoding, 512)
    assert np.allclose(many[3], one, atol=1e-6)
    assert float(one @ VECTORS[3]) > 0.999
    with pytest.raises(FvsError) as info:
        codec.decode(payloads[3][:-1], encoding, 512)
    assert info.value.code is ErrorCode.TEMPLATE_INTEGRITY
