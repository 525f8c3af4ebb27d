"""Dynamic micro-batching: crops from concurrent requests are embedded together.

Worker threads hand crops to one batching thread, which takes up to ``max_batch_size`` of
them at a time. It waits up to ``max_wait_ms`` for a batch to fill, but only while other
requests are still on their way to the embedder: a lone request never waits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np
import numpy.typing as npt

from fvs.observability import hooks
from fvs.pipeline.decode import BgrImage
from fvs.runtime.sessions import Load

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[BgrImage]], npt.NDArray[np.float32]]


class MicroBatcher:
    def __init__(
        self, embed: EmbedFn, max_batch_size: int, max_wait_ms: float, requests: Load
    ) -> None:
        """``requests``: the pipeline's count of requests on their way (FacePipeline.extract
        enters it), which tells a lone request from one that others may join."""
        self._embed = embed
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: queue.Queue[tuple[BgrImage, Future[npt.NDArray[np.float32]]] | None] = (
            queue.Queue()
        )
        self._requests = requests
        self.batches: list[int] = []  # sizes of recent batches (for tests and benchmarks)
        self._thread = threading.Thread(target=self._run, name="fvs-embed-batcher", daemon=True)
        self._thread.start()

    def embed(self, crop: BgrImage) -> npt.NDArray[np.float32]:
        """(D,) embedding of one aligned crop, computed in a batch with others; computed right
        here, without a thread hand-off, when no other request is on its way."""
        if self._requests.count <= 1 and self._queue.empty():
            hooks.batch(1)
            self.batches.append(1)
            del self.batches[:-1000]
            vector: npt.NDArray[np.float32] = self._embed([crop])[0]
            return vector
        done: Future[npt.NDArray[np.float32]] = Future()
        self._queue.put((crop, done))
        return done.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _next(
        self, timeout: float | None
    ) -> tuple[BgrImage, Future[npt.NDArray[np.float32]]] | None:
        """The next crop; None on timeout or at close (the close marker is put back)."""
        try:
            item = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is None:
            self._queue.put(None)
        return item

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                item = self._next(None)
                if item is None:
                    more_coming = self._requests.count > len(batch)
                    remaining = deadline - time.monotonic()
                    if not more_coming or remaining <= 0:
                        break
                    item = self._next(min(remaining, 0.0005))
                    if item is None:
                        continue
                batch.append(item)
            self._flush(batch)

    def _flush(self, batch: list[tuple[BgrImage, Future[npt.NDArray[np.float32]]]]) -> None:
        hooks.batch(len(batch))
        self.batches.append(len(batch))
        del self.batches[:-1000]
        try:
            vectors = self._embed([crop for crop, _ in batch])
        except Exception as exc:  # every waiting request gets the failure
            log.exception("batched embedding failed")
            for _, done in batch:
                done.set_exception(exc)
            return
        for (_, done), vector in zip(batch, vectors, strict=True):
            done.set_result(vector)
