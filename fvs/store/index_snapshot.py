"""Starting a server from a snapshot of its template index instead of reading every template.

Building the index reads and opens every active template (minutes at 10^7). A snapshot
(:mod:`fvs.store.snapshot`: sealed with the template key, bound to this store, model, encoding
and dimension) holds the index as it was at change-log sequence number ``seq``; at start the
server loads it and replays the change log after ``seq`` (each changed citizen's active
template is read again from the store, the truth). It rebuilds from the store instead when:

- there is no usable snapshot (missing, truncated, tampered, another store, model or key);
- the change log no longer holds the snapshot's ``seq`` (pruned past it: changes may be
  lost), or holds another change there, or ends before it (another or a restored database);
- a bulk load (``BULK_CHANGE``, ``fvs registry seed``) was logged after the index's last full
  read of the store (its citizens are not in the log one by one).

``seq`` is the last change logged at least ``MARGIN`` before the snapshot was taken, not the
last one: an enrolment updates the index just after its transaction commits, and on
PostgreSQL sequence numbers are taken before commit, out of commit order. Replaying a change
twice is harmless (each reads the store's current state).

Snapshots live in ``data_dir/cache`` (local, not the database). One is taken after a full
load, every ``interval_s`` while templates change, and at a graceful stop.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fvs.errors import ErrorCode, FvsError
from fvs.store.db import FILE_MODE, private_dir
from fvs.store.index import TemplateIndex
from fvs.store.registry import BULK_CHANGE, SqlCitizenStore

log = logging.getLogger(__name__)

MARGIN = dt.timedelta(seconds=30)
REPLAY_BATCH = 50_000


def _utc(value: object) -> str:
    stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return stamp.astimezone(dt.UTC).isoformat()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[bool]:
    """True while this process holds ``lock_path`` (False at once when another does)."""
    private_dir(lock_path.parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


def apply_changes(store: SqlCitizenStore, index: TemplateIndex, citizen_ids: Iterable[str]) -> int:
    """Put each citizen's active template (or its absence) into the index, as the store has
    it now; returns the citizens looked at."""
    done = 0
    for cid in dict.fromkeys(citizen_ids):
        try:
            template = store.active_template(cid)
        except FvsError as exc:
            if exc.code is not ErrorCode.TEMPLATE_INTEGRITY:
                raise
            template = None  # verifying reads the store and gets the reason
        if template is None or template.model_id != index.model_id:
            index.remove(cid)
        elif index.version_of(cid) != template.version:
            index.put(cid, template.vector, template.version)
        done += 1
    return done


class IndexSnapshots:
    """Loads, replays and takes snapshots of one server's template index."""

    def __init__(
        self,
        store: SqlCitizenStore,
        directory: Path,
        interval_s: float,
        margin: dt.timedelta = MARGIN,
    ) -> None:
        if store.cipher is None:
            raise ValueError("index snapshots need the template key")
        self.store = store
        self.cipher = store.cipher
        self.directory = directory
        self.interval_s = interval_s
        self.margin = margin
        self.index: TemplateIndex | None = None
        self.saved_change = -1  # the store's last change when the last snapshot was taken
        self.replayed = 0  # changes replayed at the last start (tests, logs)
        self.replay_s = 0.0
        self.source = ""  # "snapshot" | "store": where the index came from
        self.follow: Callable[[], dt.datetime | int] | None = None
        self.current: Callable[[], TemplateIndex | None] | None = None
        # arrays (and metadata) derived from the index being saved, to save beside it: the
        # 1:N search index (fvs.dedup.search.DuplicateSearch.companions)
        self.companions: Callable[[TemplateIndex], tuple[dict[str, Any], dict[str, Any]]] | None = (
            None
        )
        self._stop = threading.Event()
        self._save_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # identity ----------------------------------------------------------------------------
    def identity(self) -> str:
        """The store the snapshot belongs to: its file, or its PostgreSQL location (the
        change-log anchor in the metadata tells a restored or replaced database apart)."""
        if self.store.backend == "sqlite":
            return "sqlite:" + str(Path(self.store.db.where).resolve())
        return self.store.db.where

    def path(self, model_id: str, encoding: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_id)
        return self.directory / f"index-{safe}-{encoding}.snap"

    def binding(self, model_id: str, dim: int, encoding: str) -> dict[str, Any]:
        return {
            "kind": "template-index",
            "store": self.identity(),
            "model_id": model_id,
            "dim": dim,
            "encoding": encoding,
        }

    # start -------------------------------------------------------------------------------
    def open_index(self, model_id: str, dim: int, encoding: str) -> TemplateIndex:
        """The index from the snapshot and the change log since, or else from the store
        (``start`` then takes snapshots in the background)."""
        index = self.load(model_id, dim, encoding)
        if index is None:
            index = self.build(model_id, dim, encoding)
            self.source = "store"
        else:
            self.source = "snapshot"
        self.index = index
        return index

    def build(self, model_id: str, dim: int, encoding: str) -> TemplateIndex:
        # at most one active template a citizen: room reserved for all, grown if more come
        room = self.store.count_citizens() + 1024
        return TemplateIndex.from_store(self.store, model_id, dim, encoding, room + room // 8)

    def load(self, model_id: str, dim: int, encoding: str) -> TemplateIndex | None:
        path = self.path(model_id, encoding)
        loaded = TemplateIndex.load(
            path,
            self.cipher,
            model_id,
            dim,
            encoding,
            self.binding(model_id, dim, encoding),
            self._in_step,
        )
        if loaded is None:
            return None
        index, meta = loaded
        start = time.perf_counter()
        reason = self._replay(index, int(meta["seq"]))
        self.replay_s = time.perf_counter() - start
        if reason is not None:
            log.warning("snapshot %s not used: %s; rebuilding", path, reason)
            return None
        self.saved_change = -1 if self.replayed else int(meta.get("last_change", -1))
        return index

    def _in_step(self, meta: dict[str, Any]) -> str | None:
        """Why the change log cannot bring this snapshot up to date (None: it can)."""
        seq = int(meta["seq"])
        last = self.store.last_change()
        bulk = self.store.db.read(
            "SELECT coalesce(max(seq), 0) FROM template_changes WHERE citizen_id = ? AND seq > ?",
            (BULK_CHANGE, int(meta.get("base_seq", 0))),
        )[0][0]
        if bulk:  # known before reading the arrays (the replay would find it too)
            return f"a bulk load (change {bulk}) after the snapshot"
        if last < seq:
            return f"the store's change log ends at {last}, before the snapshot's {seq}"
        if seq == 0:
            first = self.store.first_change()
            return f"the change log starts at {first}: pruned since" if first > 1 else None
        rows = self.store.db.read(
            "SELECT citizen_id, changed_at FROM template_changes WHERE seq = ?", (seq,)
        )
        if not rows:
            first = self.store.first_change()
            return f"the change log was pruned past the snapshot (first {first}, snapshot {seq})"
        if [str(rows[0][0]), _utc(rows[0][1])] != meta.get("anchor"):
            return f"change {seq} is not the one the snapshot saw (another database)"
        return None

    def _replay(self, index: TemplateIndex, seq: int) -> str | None:
        self.replayed = 0
        while changes := self.store.changes_since(seq, REPLAY_BATCH):
            ids = []
            for number, cid in changes:
                if cid == BULK_CHANGE:
                    if number > index.base_seq:
                        return f"a bulk load (change {number}) after the snapshot"
                    continue
                ids.append(cid)
            apply_changes(self.store, index, ids)
            self.replayed += len(changes)
            seq = changes[-1][0]
        return None

    # saving ------------------------------------------------------------------------------
    def _stable_point(self) -> tuple[int, list[str] | None]:
        """(seq, anchor): the last change logged ``margin`` before now, which the index reflects."""
        if self.store.backend == "postgresql":
            now = self.store.db.read("SELECT clock_timestamp()")[0][0]
            assert isinstance(now, dt.datetime)
        else:
            now = dt.datetime.now(dt.UTC)
        applied = self.follow() if self.follow is not None else None
        if isinstance(applied, dt.datetime):  # PostgreSQL: the sync's last catch-up
            now = min(now, applied)
        cutoff: object = now - self.margin
        if self.store.backend == "sqlite":
            cutoff = (now - self.margin).astimezone(dt.UTC).isoformat()
        upto = applied if isinstance(applied, int) else None  # SQLite: the last seq applied
        rows = self.store.db.read(
            "SELECT seq, citizen_id, changed_at FROM template_changes WHERE changed_at <= ?"
            " AND seq <= ? ORDER BY changed_at DESC, seq DESC LIMIT 1",
            (cutoff, upto if upto is not None else 2**62),
        )
        if not rows:
            return 0, None
        return int(rows[0][0]), [str(rows[0][1]), _utc(rows[0][2])]

    def save(self) -> bool:
        """Take a snapshot now (False, logged, when it could not be written)."""
        index = self.current() if self.current is not None else self.index
        if index is None:
            return False
        path = self.path(index.model_id, index.encoding)
        with self._save_lock, _exclusive(path.with_suffix(".lock")) as mine:
            if not mine:  # another process on this data directory is writing it
                log.info("template index snapshot %s: another process is writing it", path)
                return False
            for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a writer killed mid-way
                stale.unlink(missing_ok=True)
            start = time.perf_counter()
            try:
                last = self.store.last_change()
                seq, anchor = self._stable_point()
                # taken before the index's rows: it covers none the saved matrix lacks
                extra, extra_meta = (
                    self.companions(index) if self.companions is not None else ({}, {})
                )
                size = index.save(
                    path,
                    self.cipher,
                    self.binding(index.model_id, index.dim, index.encoding),
                    {"seq": seq, "anchor": anchor, "last_change": last, **extra_meta},
                    extra,
                )
            except Exception as exc:  # a full disk must not take the server down
                log.error("template index snapshot %s not written: %s", path, exc)
                return False
            self.saved_change = last
            log.info(
                "template index snapshot: %d templates at change %d, %.0f MB, in %.1f s",
                len(index),
                seq,
                size / 1e6,
                time.perf_counter() - start,
            )
            return True

    def _changed(self) -> bool:
        try:
            return self.store.last_change() != self.saved_change
        except FvsError:
            return False

    def start(
        self,
        follow: Callable[[], dt.datetime | int] | None = None,
        current: Callable[[], TemplateIndex | None] | None = None,
    ) -> None:
        """Take snapshots in the background from now on (one at once when the index was
        built from the store). ``follow``: when other servers or processes write too, the
        database time before which their changes are in the index (the sync's last catch-up):
        a snapshot never claims a change the index may still lack. None: this process is the
        only writer, and applies its own changes as it commits them. ``current``: the index
        in use now (a rebuild after a bulk change swaps in another one)."""
        self.follow = follow
        self.current = current
        self._thread = threading.Thread(
            target=self._run, args=(self.source == "store",), name="fvs-index-snapshot", daemon=True
        )
        self._thread.start()

    def _run(self, save_now: bool) -> None:
        if save_now:
            self.save()
        while not self._stop.wait(self.interval_s):
            if self._changed():
                self.save()

    def stop(self) -> None:
        """At a graceful stop: wait for a snapshot being written; take one if templates
        changed since the last."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._save_lock:  # a save another thread began (a new search index's) ends first
            pass
        if self.index is not None and self._changed():
            self.save()
