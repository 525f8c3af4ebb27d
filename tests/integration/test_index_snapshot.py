"""The template index started from a snapshot plus the change log (fvs.store.index_snapshot),
on SQLite and PostgreSQL: changes after the snapshot are replayed; a bulk load after it, a
change log pruned past it, a snapshot of another store or model, or a damaged file make the
server rebuild from the store, never answer from a stale index."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import pytest

from fvs.config import StoreSettings
from fvs.store.crypto import write_new_key
from fvs.store.factory import open_registry, open_snapshots
from fvs.store.index import TemplateIndex
from fvs.store.index_snapshot import IndexSnapshots
from fvs.store.registry import SqlCitizenStore
from fvs.store.synthetic import minimal_citizen, random_templates, synthetic_citizens
from tests.conftest import CITIZEN_A, CITIZEN_B, migrate_all

MODEL = "m@1"
NEW = "1101700000010"  # a valid citizen ID no bulk load makes


@pytest.fixture
def registry(store_settings: StoreSettings) -> Iterator[SqlCitizenStore]:
    store = open_registry(store_settings)
    citizens = list(synthetic_citizens(200, seed=3))
    vectors = random_templates(200, 512, seed=3)
    store.add_citizens(citizens, zip((c.citizen_id for c in citizens), vectors, strict=True), MODEL)
    for cid, seed in ((CITIZEN_A, 1), (CITIZEN_B, 2)):
        store.add_template(cid, MODEL, unit(seed), create=minimal_citizen(cid))
    yield store
    store.close()


def unit(seed: int) -> np.ndarray:
    return random_templates(1, 512, seed + 1000)[0]


def snapshots(store: SqlCitizenStore, directory: Path) -> IndexSnapshots:
    # margin 0: the snapshot stands at the last change, as it would 30 s after it
    return IndexSnapshots(store, directory, 3600, margin=dt.timedelta(0))


def start(store: SqlCitizenStore, directory: Path, encoding: str = "i8") -> IndexSnapshots:
    """What a server start does, without its background saver."""
    snaps = snapshots(store, directory)
    index = snaps.load(MODEL, 512, encoding)
    snaps.source = "snapshot" if index is not None else "store"
    snaps.index = index or snaps.build(MODEL, 512, encoding)
    return snaps


def same(index: TemplateIndex, other: TemplateIndex) -> None:
    assert len(index) == len(other)
    for cid in other._rows:
        a, b = index.lookup(str(cid)), other.lookup(str(cid))
        assert a is not None and b is not None
        assert a[1] == b[1]
        assert float(np.dot(a[0], b[0])) > 0.999


def test_changes_after_the_snapshot_are_replayed(registry: SqlCitizenStore, tmp_path: Path) -> None:
    first = start(registry, tmp_path / "cache")
    assert first.source == "store"
    assert first.save()
    # while the server is down: an enrolment, a re-enrolment, an erasure
    registry.add_template(NEW, MODEL, unit(3), create=minimal_citizen(NEW))
    registry.add_template(CITIZEN_A, MODEL, unit(4))
    registry.delete_templates(CITIZEN_B)

    again = start(registry, tmp_path / "cache")
    assert again.source == "snapshot"
    assert again.replayed == 3
    index = again.index
    assert index is not None
    assert index.lookup(CITIZEN_B) is None
    a = index.lookup(CITIZEN_A)
    assert a is not None and a[1] == 2 and float(np.dot(a[0], unit(4))) > 0.99
    new = index.lookup(NEW)
    assert new is not None and new[1] == 1
    same(index, TemplateIndex.from_store(registry, MODEL, 512, "i8"))


def test_a_snapshot_with_nothing_after_it_replays_nothing(
    registry: SqlCitizenStore, tmp_path: Path
) -> None:
    assert start(registry, tmp_path / "c").save()
    again = start(registry, tmp_path / "c")
    assert (again.source, again.replayed) == ("snapshot", 0)
    assert again.index is not None
    same(again.index, TemplateIndex.from_store(registry, MODEL, 512, "i8"))


def rebuilt(
    registry: SqlCitizenStore, directory: Path, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        snaps = start(registry, directory)
    assert snaps.source == "store"
    assert why in caplog.text
    assert snaps.index is not None
    same(snaps.index, TemplateIndex.from_store(registry, MODEL, 512, "i8"))


def test_a_bulk_load_after_the_snapshot_rebuilds(
    registry: SqlCitizenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert start(registry, tmp_path / "c").save()
    citizens = list(synthetic_citizens(20, seed=9))
    vectors = random_templates(20, 512, seed=9)
    registry.add_citizens(
        citizens, zip((c.citizen_id for c in citizens), vectors, strict=True), MODEL
    )
    rebuilt(registry, tmp_path / "c", caplog, "a bulk load")


def test_a_change_log_pruned_past_the_snapshot_rebuilds(
    registry: SqlCitizenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert start(registry, tmp_path / "c").save()
    registry.delete_templates(CITIZEN_A)
    last = registry.last_change()
    with registry.db.tx() as tx:  # what pruning does to a server that was down for long
        tx.execute("DELETE FROM template_changes WHERE seq < ?", (last,))
    rebuilt(registry, tmp_path / "c", caplog, "pruned past the snapshot")


def test_a_snapshot_of_another_store_is_refused(
    store_settings: StoreSettings,
    registry: SqlCitizenStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert start(registry, tmp_path / "c").save()
    # another store (another data directory, or another database on the same server), the
    # same key file, and the snapshot handed to it
    other_settings = store_settings.model_copy(deep=True)
    other_settings.data_dir = tmp_path / "other"
    shutil.copytree(store_settings.key_file().parent, other_settings.key_file().parent)
    with another_database(store_settings.url) as url:
        other_settings.url = url
        if url is not None:
            migrate_all(other_settings)
        other = open_registry(other_settings)
        try:
            other.add_template(CITIZEN_A, MODEL, unit(1), create=minimal_citizen(CITIZEN_A))
            rebuilt(other, tmp_path / "c", caplog, "another store")
        finally:
            other.close()


@contextmanager
def another_database(url: str | None) -> Iterator[str | None]:
    """A second fresh database on the server ``url`` names (None: SQLite, nothing to do)."""
    if url is None:
        yield None
        return
    head, _, _ = url.rpartition("/")
    name = f"fvs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{head}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(f"{head}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_replaced_database_at_the_same_place_is_refused(
    store_settings: StoreSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database dropped and made again (or restored) at the same address: the change log's
    entry at the snapshot's sequence number is not the one the snapshot saw."""
    store = open_registry(store_settings)
    try:
        for k, cid in enumerate((CITIZEN_A, CITIZEN_B)):
            store.add_template(cid, MODEL, unit(k), create=minimal_citizen(cid))
        assert start(store, tmp_path / "c").save()
        with store.db.tx() as tx:
            tx.execute("UPDATE template_changes SET citizen_id = ?", (NEW,))
        rebuilt(store, tmp_path / "c", caplog, "not the one the snapshot saw")
        with store.db.tx() as tx:
            tx.execute("DELETE FROM template_changes")
        rebuilt(store, tmp_path / "c", caplog, "before the snapshot")
    finally:
        store.close()


def test_another_model_or_encoding_rebuilds(
    registry: SqlCitizenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert start(registry, tmp_path / "c").save()
    path = snapshots(registry, tmp_path / "c").path(MODEL, "i8")
    shutil.copy(path, snapshots(registry, tmp_path / "c").path(MODEL, "f16"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert start(registry, tmp_path / "c", "f16").source == "store"
    assert "another encoding" in caplog.text


def test_a_damaged_snapshot_rebuilds(
    registry: SqlCitizenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snaps = start(registry, tmp_path / "c")
    assert snaps.save()
    path = snaps.path(MODEL, "i8")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    rebuilt(registry, tmp_path / "c", caplog, "integrity")
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    rebuilt(registry, tmp_path / "c", caplog, "truncated")


def test_another_key_file_rebuilds(
    store_settings: StoreSettings,
    registry: SqlCitizenStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert start(registry, tmp_path / "c").save()
    path = snapshots(registry, tmp_path / "c").path(MODEL, "i8")
    other = store_settings.model_copy(deep=True)
    other.template_key_file = tmp_path / "other.key"
    write_new_key(other.template_key_file)
    from fvs.store.crypto import TemplateCipher

    registry.cipher = TemplateCipher(other.template_key_file)
    snaps = snapshots(registry, tmp_path / "c")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert snaps.load(MODEL, 512, "i8") is None
    assert "lacks" in caplog.text
    assert path.exists()


def test_enrolments_after_a_load_then_the_stop_snapshot(
    store_settings: StoreSettings, registry: SqlCitizenStore
) -> None:
    """The server's own path: open_index saves after a full load (in the background), the
    index keeps taking enrolments, stop() saves them; the next start replays nothing."""
    snaps = open_snapshots(store_settings, registry)
    assert snaps is not None
    snaps.margin = dt.timedelta(0)
    index = snaps.open_index(MODEL, 512, "i8")
    assert snaps.source == "store"
    snaps.start()
    template, _ = registry.add_template(NEW, MODEL, unit(7), create=minimal_citizen(NEW))
    index.put(NEW, template.vector, template.version)
    registry.delete_templates(CITIZEN_B)
    index.remove(CITIZEN_B)
    snaps.stop()
    again = start(registry, store_settings.data_dir / "cache")
    assert (again.source, again.replayed) == ("snapshot", 0)
    assert again.index is not None
    assert again.index.lookup(CITIZEN_B) is None
    same(again.index, TemplateIndex.from_store(registry, MODEL, 512, "i8"))


def test_rows_of_erased_citizens_are_not_resurrected(
    registry: SqlCitizenStore, tmp_path: Path
) -> None:
    """Erased citizens' rows stay in the matrix; the snapshot must not map them again."""
    snaps = start(registry, tmp_path / "c")
    assert snaps.index is not None
    registry.delete_templates(CITIZEN_A)
    snaps.index.remove(CITIZEN_A)
    assert snaps.save()
    again = start(registry, tmp_path / "c")
    assert again.index is not None and again.index.lookup(CITIZEN_A) is None


def test_one_writer_at_a_time_on_one_data_directory(
    registry: SqlCitizenStore, tmp_path: Path
) -> None:
    """Several processes on one data directory: while one writes the snapshot, another skips
    (and tries again at its next turn) instead of writing the same file at once."""
    from fvs.store.index_snapshot import _exclusive

    snaps = start(registry, tmp_path / "c")
    path = snaps.path(MODEL, "i8")
    with _exclusive(path.with_suffix(".lock")) as held:
        assert held
        assert not snaps.save()
        assert not path.exists()
    stale = path.with_name(f".{path.name}.99999.tmp")  # a writer killed mid-way
    stale.write_bytes(b"half")
    assert snaps.save()
    assert path.exists()
    assert not stale.exists()


def test_a_snapshot_never_claims_what_the_sync_has_not_caught_up_with(
    registry: SqlCitizenStore, tmp_path: Path
) -> None:
    """Another server's enrolment, logged but not yet in this index (its sync is behind, or
    was disconnected): a snapshot taken now stands before it, so the next start replays it."""
    snaps = start(registry, tmp_path / "c")
    if registry.backend == "postgresql":
        behind = registry.db.read("SELECT clock_timestamp()")[0][0]
    else:
        behind = dt.datetime.now(dt.UTC)
    registry.add_template(NEW, MODEL, unit(5), create=minimal_citizen(NEW))  # not in the index
    assert snaps.index is not None and snaps.index.lookup(NEW) is None
    snaps.follow = lambda: behind
    assert snaps.save()
    again = start(registry, tmp_path / "c")
    assert again.source == "snapshot" and again.replayed >= 1
    assert again.index is not None
    new = again.index.lookup(NEW)
    assert new is not None and new[1] == 1
