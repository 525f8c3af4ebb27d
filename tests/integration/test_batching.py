"""Micro-batching: a batched embedding equals the single one, and concurrent requests batch."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fvs.pipeline.align import align
from fvs.pipeline.detector import landmarks_array
from fvs.pipeline.pipeline import FacePipeline
from fvs.pipeline.score import cosine
from tests.conftest import bgr, photo

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg", "biden2.jpg"]


def crops(pipeline: FacePipeline) -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        image = bgr(name)
        face = pipeline.find_subject(image)
        out.append(align(image, landmarks_array(face)))
    return out


def test_a_batch_embeds_each_crop_as_alone(pipeline: FacePipeline) -> None:
    batch = crops(pipeline) * 2  # 8 crops
    together = pipeline.embedder.embed(batch)
    for crop, vector in zip(batch, together, strict=True):
        alone = pipeline.embedder.embed([crop])[0]
        assert cosine(alone, vector) >= 0.99999
        assert np.allclose(alone, vector, atol=1e-5)


def test_concurrent_requests_are_batched_and_answered_correctly(pipeline: FacePipeline) -> None:
    assert pipeline.batcher is not None
    expected = {name: pipeline.extract(photo(name)).embedding for name in PHOTOS}
    pipeline.batcher.batches.clear()
    names = PHOTOS * 6
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: pipeline.extract(photo(n)).embedding, names))
    for name, vector in zip(names, results, strict=True):
        assert cosine(vector, expected[name]) >= 0.99999
    assert sum(pipeline.batcher.batches) == len(names)
    assert max(pipeline.batcher.batches) > 1  # some crops shared a model run


def test_a_lone_request_does_not_wait_for_a_batch(pipeline: FacePipeline) -> None:
    assert pipeline.batcher is not None
    pipeline.batcher.batches.clear()
    for name in PHOTOS:
        pipeline.extract(photo(name))
    assert pipeline.batcher.batches == [1, 1, 1, 1]
