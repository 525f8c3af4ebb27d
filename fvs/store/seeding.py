"""Seeding synthetic citizens in bulk (``fvs registry seed``): 10^7 on two cores.

The work has two halves that this splits across processes. Making a chunk's rows is Python
(citizen records, their Digital ID cards, templates encoded and sealed with AES-GCM); writing
them is the database's (SQLite's B-trees, or PostgreSQL's COPY and server process). Worker
processes build the chunks ahead while this process writes them, in order: threads would
not do, since SQLite gives the GIL back at every row it steps and a busy builder thread then
holds the writer up for a switch interval each time.

Every chunk is derived from (seed, its first index) alone, so the result does not depend on
the number of workers or on timing; citizens come in ID order (:class:`SyntheticCitizens`),
which keeps the ID-keyed B-trees appending rather than rewriting pages.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from fvs.digitalid.store import card_rows
from fvs.digitalid.synthetic import card_for
from fvs.store.crypto import TemplateCipher
from fvs.store.db import Row
from fvs.store.registry import BulkRows, bulk_rows
from fvs.store.synthetic import SyntheticCitizens, template_chunk

PARENT_POLL_S = 0.2


@dataclass(frozen=True)
class SeedJob:
    """What to seed: ``count`` citizens of ``seed`` in chunks of ``chunk``; with templates
    of ``dim`` for ``model_id`` when ``dim`` > 0, encoded as ``encoding`` and sealed with
    the keys in ``key_file`` (None: plaintext)."""

    count: int
    seed: int
    chunk: int
    model_id: str = ""
    dim: int = 0
    encoding: str = "i8"
    key_file: Path | None = None


@dataclass(frozen=True)
class SeedChunk:
    """One transaction's worth: the registry's rows and the Digital ID cards' rows."""

    first: int
    size: int
    rows: BulkRows
    cards: list[Row]


class _Builder:
    def __init__(self, job: SeedJob) -> None:
        self.job = job
        self.citizens = SyntheticCitizens(job.count, job.seed)
        self.cipher = TemplateCipher(job.key_file) if job.key_file is not None else None

    def build(self, first: int) -> SeedChunk:
        job = self.job
        chunk = list(self.citizens.between(first, first + job.chunk))
        templates = None
        if job.dim:
            vectors = template_chunk(first, len(chunk), job.dim, job.seed)
            templates = zip((c.citizen_id for c in chunk), vectors, strict=True)
        rows = bulk_rows(self.cipher, job.encoding, chunk, templates, job.model_id)
        # the Digital ID card of each (issue 14), derived from the same seed
        cards = card_rows(card_for(c, job.seed) for c in chunk)
        return SeedChunk(first, len(chunk), rows, cards)


_worker: dict[str, _Builder] = {}  # a worker process's builder


def _start(job: SeedJob, parent: int) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="fvs-seed-parent", daemon=True).start()
    _worker["builder"] = _Builder(job)


def _exit_with(parent: int) -> None:
    """A worker ends as soon as the seeding process does (killed, say): no orphan goes on
    burning a core or holding the caller's output open."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _build(first: int) -> SeedChunk:
    return _worker["builder"].build(first)


def seed_chunks(job: SeedJob, workers: int = 1) -> Iterator[SeedChunk]:
    """The chunks of ``job`` in order, built by ``workers`` processes (0: here, one after
    the other), each at most ``workers + 1`` chunks ahead of the caller."""
    firsts = iter(range(0, job.count, job.chunk))
    if workers < 1:
        builder = _Builder(job)
        yield from (builder.build(f) for f in firsts)
        return
    # spawn, not fork: the caller holds database connections (and psycopg's pool threads)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start, initargs=(job, os.getpid())
    )
    try:
        ahead = deque(pool.submit(_build, f) for f in islice(firsts, workers + 1))
        while ahead:
            chunk = ahead.popleft().result()
            ahead.extend(pool.submit(_build, f) for f in islice(firsts, 1))
            yield chunk
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
