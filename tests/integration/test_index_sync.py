"""Following the change log (fvs.store.sync): two stores on one database, one writing, the
other's index following it, on SQLite (polling by sequence number) and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fvs.config import StoreSettings
from fvs.domain import Template
from fvs.store import sync as sync_module
from fvs.store.factory import open_registry
from fvs.store.index import TemplateIndex
from fvs.store.registry import SqlCitizenStore
from fvs.store.sync import IndexSync, TemplateIndexFollower
from fvs.store.synthetic import minimal_citizen, random_templates, synthetic_citizens

MODEL = "m@1"
DIM = 512
CITIZEN = "3100600445635"


def _until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Holder:
    """What a server does: the index lives in an attribute, a rebuild swaps it."""

    def __init__(self, index: TemplateIndex) -> None:
        self.index = index
        self.applied: list[tuple[str, int | None]] = []

    def swap(self, index: TemplateIndex) -> None:
        self.index = index


class Recorder:
    """A second follower (as the 1:N search index will be): sees every change too."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None]] = []
        self.rebuilt = 0

    def apply(self, citizen_id: str, template: Template | None) -> None:
        self.seen.append((citizen_id, None if template is None else template.version))

    def rebuild(self) -> None:
        self.rebuilt += 1


@pytest.fixture
def pair(store_settings: StoreSettings) -> Iterator[tuple[SqlCitizenStore, SqlCitizenStore]]:
    writer, reader = open_registry(store_settings), open_registry(store_settings)
    yield writer, reader
    writer.close()
    reader.close()


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[tuple[SqlCitizenStore, SqlCitizenStore]]:
    """Two stores on one SQLite data directory (what SQLite-only behaviour is tested on)."""
    settings = StoreSettings(data_dir=tmp_path / "data")
    writer, reader = open_registry(settings), open_registry(settings)
    yield writer, reader
    writer.close()
    reader.close()


def _follow(
    reader: SqlCitizenStore, interval_s: float = 0.02
) -> tuple[IndexSync, Holder, Recorder]:
    since = IndexSync.mark(reader)
    holder = Holder(TemplateIndex.from_store(reader, MODEL, DIM))
    recorder = Recorder()
    follower = TemplateIndexFollower(reader, lambda: holder.index, holder.swap)
    sync = IndexSync(reader, [follower, recorder], since, "poll", interval_s)
    sync.start()
    return sync, holder, recorder


def test_enrolment_reenrolment_and_erasure_are_followed(
    pair: tuple[SqlCitizenStore, SqlCitizenStore],
) -> None:
    writer, reader = pair
    sync, holder, recorder = _follow(reader)
    vectors = random_templates(2, DIM, seed=1)
    try:
        writer.add_template(CITIZEN, MODEL, vectors[0], create=minimal_citizen(CITIZEN))
        assert _until(lambda: holder.index.version_of(CITIZEN) == 1)
        writer.add_template(CITIZEN, MODEL, vectors[1])
        assert _until(lambda: holder.index.version_of(CITIZEN) == 2)
        writer.delete_templates(CITIZEN)
        assert _until(lambda: holder.index.version_of(CITIZEN) is None)
        assert _until(lambda: recorder.seen[-1:] == [(CITIZEN, None)])
        assert [v for _, v in recorder.seen] == [1, 2, None]  # in order, once each
    finally:
        sync.stop()


def test_sqlite_polls_by_sequence_number(
    sqlite_pair: tuple[SqlCitizenStore, SqlCitizenStore],
) -> None:
    writer, reader = sqlite_pair
    vectors = random_templates(3, DIM, seed=2)
    writer.add_template(CITIZEN, MODEL, vectors[0], create=minimal_citizen(CITIZEN))
    index = TemplateIndex(MODEL, DIM)
    start = IndexSync.mark(reader)
    assert start == reader.last_change() == 1
    sync = IndexSync(reader, index, start)  # not started: driven by hand
    sync.catch_up()
    assert sync.applied == 0  # nothing after the mark
    writer.add_template(CITIZEN, MODEL, vectors[1])
    writer.add_template(CITIZEN, MODEL, vectors[2])
    sync.catch_up()
    assert index.version_of(CITIZEN) == 3
    assert sync.applied == 1  # the two changes to one citizen: read once
    sync.catch_up()
    assert sync.applied == 1  # nothing new: one indexed query, nothing applied


def test_bulk_load_rebuilds_in_the_background_and_swaps(
    pair: tuple[SqlCitizenStore, SqlCitizenStore],
) -> None:
    writer, reader = pair
    sync, holder, recorder = _follow(reader)
    before = holder.index
    try:
        citizens = list(synthetic_citizens(50, seed=5))
        ids = [c.citizen_id for c in citizens]
        templates = zip(ids, random_templates(50, DIM, seed=6), strict=True)
        writer.add_citizens(citizens, templates, MODEL)
        assert _until(lambda: sync.rebuilds == 1)
        assert holder.index is not before  # a new index swapped in, not a partial one
        assert len(holder.index) == 50
        assert recorder.rebuilt == 1
        # single changes keep being followed on the new index
        writer.delete_templates(ids[0])
        assert _until(lambda: holder.index.version_of(ids[0]) is None)
    finally:
        sync.stop()


def test_a_reader_that_missed_pruned_changes_rebuilds(
    sqlite_pair: tuple[SqlCitizenStore, SqlCitizenStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = sqlite_pair
    vectors = random_templates(3, DIM, seed=3)
    holder = Holder(TemplateIndex(MODEL, DIM))
    follower = TemplateIndexFollower(reader, lambda: holder.index, holder.swap)
    sync = IndexSync(reader, [follower], IndexSync.mark(reader), "poll", 0.02)
    writer.add_template(CITIZEN, MODEL, vectors[0], create=minimal_citizen(CITIZEN))
    writer.add_template(CITIZEN, MODEL, vectors[1])
    # both changes are pruned before the reader reads them (it was stalled for a day)
    monkeypatch.setattr(sync_module, "KEEP_CHANGES", dt.timedelta(seconds=-1))
    sync._prune()
    writer.add_template(CITIZEN, MODEL, vectors[2])
    assert reader.first_change() == 3
    monkeypatch.setattr(sync_module, "PRUNE_EVERY_S", 0.0)
    sync._housekeeping()
    assert _until(lambda: sync.rebuilds == 1)
    assert holder.index.version_of(CITIZEN) == 3
    sync.stop()


def test_prune_keeps_recent_changes(pair: tuple[SqlCitizenStore, SqlCitizenStore]) -> None:
    writer, reader = pair
    writer.add_template(
        CITIZEN, MODEL, random_templates(1, DIM, seed=4)[0], create=minimal_citizen(CITIZEN)
    )
    sync = IndexSync(reader, TemplateIndex(MODEL, DIM), IndexSync.mark(reader))
    sync._prune()
    assert reader.last_change() >= 1 and reader.first_change() >= 1
