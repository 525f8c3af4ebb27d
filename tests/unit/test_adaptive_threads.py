"""Adaptive intra-op threads: a lone request runs on the full thread pool, concurrent ones each
on a one-thread twin of the session (fvs.runtime.sessions.Load)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from fvs.config import ModelSettings, PipelineSettings, default_workers
from fvs.pipeline.pipeline import FacePipeline
from fvs.runtime.manifest import load_manifest, read_verified
from fvs.runtime.sessions import CPU, Load, Session, SessionOptions
from tests.conftest import DATA
from tests.unit.test_runtime import MODELS


def _weights() -> bytes:
    manifest, folder = load_manifest(MODELS, "buffalo_sc")
    return read_verified(folder, manifest.detector.file, manifest.detector.sha256).data


def test_load_counts_requests_across_threads() -> None:
    load = Load()
    assert not load.shared()
    inside = threading.Event()
    leave = threading.Event()

    def request() -> None:
        with load:
            inside.set()
            leave.wait(5)

    other = threading.Thread(target=request)
    other.start()
    assert inside.wait(5)
    assert not load.shared()  # one request alone
    with load:
        assert load.shared()  # two at once
    leave.set()
    other.join(5)
    assert not load.shared()


def test_the_twin_is_used_only_while_the_pipeline_is_shared() -> None:
    load = Load()
    options = SessionOptions(providers=[CPU], adaptive_threads=True)
    session = Session(_weights(), "det", options, load)
    assert session.narrow is not None
    assert session.current() is session.inner
    with load, load:
        assert session.current() is session.narrow
    assert session.current() is session.inner


def test_a_batch_of_several_requests_keeps_a_pool_of_more_than_two_threads() -> None:
    weights = _weights()
    for threads, batch_on_the_pool in ((4, True), (2, False)):
        load = Load()
        options = SessionOptions(providers=[CPU], intra_op_threads=threads, adaptive_threads=True)
        session = Session(weights, "det", options, load)
        with load, load:
            assert session.current(requests=1) is session.narrow
            expected = session.inner if batch_on_the_pool else session.narrow
            assert session.current(requests=3) is expected
        assert session.current(requests=3) is session.inner  # alone: always the pool


def test_no_twin_where_it_cannot_help() -> None:
    weights = _weights()
    one_thread = SessionOptions(providers=[CPU], intra_op_threads=1, adaptive_threads=True)
    assert Session(weights, "det", one_thread, Load()).narrow is None
    switched_off = SessionOptions(providers=[CPU], adaptive_threads=False)
    assert Session(weights, "det", switched_off, Load()).narrow is None
    no_load = SessionOptions(providers=[CPU], adaptive_threads=True)
    assert Session(weights, "det", no_load).narrow is None


class _Counting:
    """Counts the runs of an onnxruntime session it stands in front of."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return self.inner.run(*args, **kwargs)


def test_a_shared_pipeline_runs_both_networks_on_the_twins_with_the_same_result() -> None:
    """One request's runs go to the twins while others are in the pipeline."""
    pipeline = FacePipeline.load(ModelSettings(providers="cpu"), PipelineSettings())
    try:
        photo = (DATA / "obama2.jpg").read_bytes()
        det = pipeline.detector
        rec = pipeline.embedder._session
        assert isinstance(rec, Session) and rec.narrow is not None and det._narrow is not None
        wide_det, narrow_det = _Counting(det._scrfd.session), _Counting(det._narrow.session)
        det._scrfd.session, det._narrow.session = wide_det, narrow_det
        wide_rec, narrow_rec = _Counting(rec.inner), _Counting(rec.narrow)
        rec.inner, rec.narrow = wide_rec, narrow_rec

        alone = pipeline.extract(photo)
        assert wide_det.runs > 0 and wide_rec.runs == 1
        assert narrow_det.runs == narrow_rec.runs == 0

        with pipeline.requests:  # another request is in the pipeline
            shared = pipeline.extract(photo)
        assert narrow_det.runs > 0 and narrow_rec.runs == 1
        assert float(np.dot(alone.embedding, shared.embedding)) > 0.9999
        assert np.allclose(alone.face.box, shared.face.box, atol=0.5)
    finally:
        pipeline.close()


def test_default_workers_is_one_more_than_the_cores() -> None:
    assert default_workers(2) == 3
    assert default_workers(16) == 17
    assert default_workers(1) == 2
