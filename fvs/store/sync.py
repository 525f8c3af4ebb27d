"""Keeping each server's template index in step with the others that share its store.

Every enrolment and erasure appends the citizen to ``template_changes`` in its own
transaction. A server re-reads that citizen's active template from the database and hands it
(or its absence) to each of its followers (:class:`IndexFollower`: the template index, and
whatever else keeps a copy of the templates, such as a 1:N search index): the database is the
truth, so a late or repeated change is harmless and the order in which they arrive does not
matter.

* **PostgreSQL** also sends ``NOTIFY fvs_templates, '<citizen id>'`` (delivered at commit, to
  every listening server). Notifications are not stored: a server that was disconnected (or
  still loading its index) reads the change log since its last catch-up, less a margin, when
  it (re)connects; ``poll`` mode reads the change log every ``interval`` instead of
  listening. Catch-up goes by time, not by sequence number: a BIGSERIAL is taken at insert,
  not at commit, so a lower number can commit after a higher one has been read.
* **SQLite** (several ``fvs serve --processes N`` children on one data directory, or a CLI
  writing beside a server) has no notifications: the change log is polled every ``interval``
  by sequence number, one indexed query. Writers hold SQLite's write lock from BEGIN IMMEDIATE
  to COMMIT, so sequence numbers commit in order and none is skipped.

A bulk change (``BULK_CHANGE``: a seed or an import) is not replayed: the followers rebuild
from the store in a background thread while the current index keeps serving (and keeps
following single changes), then swap the new one in and replay what changed since the
rebuild began. Both backends prune the change log of entries older than ``KEEP_CHANGES``; a
reader that finds it missed pruned entries rebuilds.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from fvs.domain import Template
from fvs.errors import ErrorCode, FvsError
from fvs.store.index import TemplateIndex
from fvs.store.registry import BULK_CHANGE, NOTIFY_CHANNEL, SqlCitizenStore

log = logging.getLogger(__name__)

# Change-log rows older than the last catch-up are read again this far back: a transaction
# that took its timestamp before the catch-up but committed after it is not missed.
CATCH_UP_MARGIN = dt.timedelta(seconds=30)
# How long the change log keeps a change (a server disconnected for longer reloads its index).
KEEP_CHANGES = dt.timedelta(days=1)
# Seconds between prunes of the change log (and, on SQLite, checks for pruned-away changes).
PRUNE_EVERY_S = 60.0
# Changes read per poll (a reader further behind reads the rest at the next poll, at once).
POLL_BATCH = 10_000

Mark = dt.datetime | int  # where a reader stands: a database time (PostgreSQL) or a seq


class IndexFollower(Protocol):
    """Something that keeps a copy of the active templates and follows the change log."""

    def apply(self, citizen_id: str, template: Template | None) -> None:
        """The citizen's active template now (None: none, or it fails its integrity check:
        verifying then reads the store and gets the reason)."""
        ...

    def rebuild(self) -> None:
        """Build afresh from the store and swap in (blocking; runs on a background thread
        while ``apply`` goes on being called on the copy being replaced)."""
        ...


class TemplateIndexFollower:
    """Keeps the :class:`TemplateIndex` that ``get`` returns in step; a rebuild builds a new
    one and hands it to ``swap`` (a server passes its service's attribute; the verifier reads
    it once per call, so it sees the old index or the new one, never a partial one)."""

    def __init__(
        self,
        store: SqlCitizenStore,
        get: Callable[[], TemplateIndex | None],
        swap: Callable[[TemplateIndex], None] | None = None,
    ) -> None:
        self.store = store
        self.get = get
        self.swap = swap

    def apply(self, citizen_id: str, template: Template | None) -> None:
        index = self.get()
        if index is None:
            return
        if template is None or template.model_id != index.model_id:
            index.remove(citizen_id)
        elif index.version_of(citizen_id) != template.version:
            index.put(citizen_id, template.vector, template.version)

    def rebuild(self) -> None:
        current = self.get()
        if current is None or self.swap is None:
            return
        start = time.perf_counter()
        fresh = TemplateIndex.from_store(
            self.store, current.model_id, current.dim, current.encoding
        )
        self.swap(fresh)
        log.info(
            "template index rebuilt after a bulk change: %d templates in %.1f s",
            len(fresh),
            time.perf_counter() - start,
        )


class IndexSync:
    """Follows the change log from ``since`` (:meth:`mark`, taken before the index was
    loaded) for ``followers`` (a bare :class:`TemplateIndex` is followed in place and never
    rebuilt). ``mode`` is PostgreSQL's ("notify" or "poll"); SQLite always polls."""

    def __init__(
        self,
        store: SqlCitizenStore,
        followers: TemplateIndex | Sequence[IndexFollower],
        since: Mark,
        mode: str = "notify",
        interval_s: float = 0.25,
    ) -> None:
        self.store = store
        if isinstance(followers, TemplateIndex):
            index = followers
            followers = [TemplateIndexFollower(store, lambda: index)]
        self.followers: list[IndexFollower] = list(followers)
        self.mode = "seq" if store.backend == "sqlite" else mode
        self.interval_s = interval_s
        self._since = since
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fvs-index-sync", daemon=True)
        self._lock = threading.Lock()
        self._rebuilding: threading.Thread | None = None
        self._rebuild_again = False
        self._replay_from: Mark | None = None  # set when a rebuild has swapped in
        self._last_prune = time.monotonic()
        self.applied = 0  # changes applied (for tests and metrics)
        self.rebuilds = 0  # rebuilds swapped in

    @staticmethod
    def database_time(store: SqlCitizenStore) -> dt.datetime:
        """The database's clock (taken before an index load, to catch up from)."""
        value = store.db.read("SELECT clock_timestamp()")[0][0]
        assert isinstance(value, dt.datetime)
        return value

    @staticmethod
    def mark(store: SqlCitizenStore) -> Mark:
        """Where the change log stands now; take it before loading an index, then follow from
        it (changes that land during the load are applied again: harmless)."""
        if store.backend == "sqlite":
            # the last number ever handed out: the log may be empty after a prune
            rows = store.db.read("SELECT seq FROM sqlite_sequence WHERE name = 'template_changes'")
            return max(store.last_change(), int(rows[0][0]) if rows else 0)
        return IndexSync.database_time(store)

    def start(self) -> None:
        self._thread.start()

    def caught_up(self) -> Mark:
        """Where every change is in the followers: PostgreSQL, the database time of the last
        catch-up; SQLite, the last sequence number applied (at first, the mark taken before
        the index was loaded)."""
        return self._since

    def stop(self) -> None:
        self._stop.set()  # the listener wakes at least once a second to see it
        if self._thread.ident is not None:
            self._thread.join(timeout=5)
        rebuilding = self._rebuilding
        if rebuilding is not None:
            rebuilding.join(timeout=30)

    @property
    def rebuilding(self) -> bool:
        return self._rebuilding is not None

    # --------------------------------------------------------------------------------------
    def refresh(self, citizen_ids: Iterable[str]) -> None:
        """Hand each citizen's active template (or its absence) to every follower; a bulk
        change starts a rebuild instead."""
        for cid in dict.fromkeys(citizen_ids):
            if cid == BULK_CHANGE:
                self._start_rebuild()
                continue
            try:
                template = self.store.active_template(cid)
            except FvsError as exc:
                if exc.code is not ErrorCode.TEMPLATE_INTEGRITY:
                    raise
                template = None  # verifying reads the store and gets the reason
            for follower in self.followers:
                follower.apply(cid, template)
            self.applied += 1

    def _start_rebuild(self) -> None:
        with self._lock:
            if self._rebuilding is not None:
                self._rebuild_again = True  # another bulk change landed during this rebuild
                return
            self._rebuilding = threading.Thread(
                target=self._rebuild, name="fvs-index-rebuild", daemon=True
            )
            self._rebuilding.start()

    def _rebuild(self) -> None:
        while True:
            try:
                mark = self.mark(self.store)
                for follower in self.followers:
                    follower.rebuild()
            except Exception as exc:  # the store went away: the old index keeps serving
                log.error("template index rebuild failed: %s; keeping the current index", exc)
                mark = None
            with self._lock:
                if mark is not None:
                    self._replay_from = mark
                    self.rebuilds += 1
                if not self._rebuild_again or self._stop.is_set():
                    self._rebuilding = None
                    return
                self._rebuild_again = False

    def _take_replay(self) -> Mark | None:
        """Where to read from again after a rebuild swapped in (changes applied to the old
        index after the rebuild began may be missing from the new one)."""
        with self._lock:
            mark, self._replay_from = self._replay_from, None
        return mark

    # PostgreSQL ---------------------------------------------------------------------------
    def catch_up(self) -> None:
        replay = self._take_replay()
        if self.mode == "seq":
            self._poll_seq(replay)
            return
        now = self.database_time(self.store)
        since = self._since
        assert isinstance(since, dt.datetime)
        if isinstance(replay, dt.datetime):
            since = min(since, replay)
        rows = self.store.db.read(
            "SELECT DISTINCT citizen_id FROM template_changes WHERE changed_at > ?",
            (since - CATCH_UP_MARGIN,),
        )
        self.refresh(str(r[0]) for r in rows)
        self._since = now

    # SQLite -------------------------------------------------------------------------------
    def _poll_seq(self, replay: Mark | None) -> None:
        seq = self._since
        assert isinstance(seq, int)
        if isinstance(replay, int):
            seq = min(seq, replay)
        while True:
            changes = self.store.changes_since(seq, POLL_BATCH)
            if not changes:
                break
            self.refresh(cid for _, cid in changes)
            seq = changes[-1][0]
            if len(changes) < POLL_BATCH:
                break
        self._since = seq

    def _missed_pruned(self) -> bool:
        """SQLite: whether changes this reader has not read were pruned (it then rebuilds)."""
        seq = self._since
        assert isinstance(seq, int)
        first = self.store.first_change()
        return first > 0 and seq < first - 1

    # --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.mode in ("poll", "seq"):
                    self.catch_up()
                    self._housekeeping()
                    self._stop.wait(self.interval_s)
                else:
                    self._listen()
            except Exception as exc:  # the database went away: retry
                if self._stop.is_set():
                    return
                log.warning("template index sync: %s; retrying", exc)
                self._stop.wait(1.0)

    def _housekeeping(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        if self.mode == "seq" and self._missed_pruned():
            log.warning("template index sync: fell behind the pruned change log; rebuilding")
            self._since = self.mark(self.store)
            self._start_rebuild()
        self._prune()

    def _listen(self) -> None:
        from fvs.store.pg import PgDatabase  # noqa: PLC0415  (psycopg only on PostgreSQL)

        db = self.store.db
        assert isinstance(db, PgDatabase)
        with db.connect() as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.catch_up()  # what happened while not listening
            last_catch_up = time.monotonic()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=1.0, stop_after=256):
                    self.refresh([note.payload])
                # a rebuild swapped in: re-read what changed since it began
                if self._replay_from is not None or time.monotonic() - last_catch_up > 60:
                    self.catch_up()  # and belt and braces, once a minute
                    last_catch_up = time.monotonic()
                self._housekeeping()

    def _prune(self) -> None:
        with self.store.db.tx() as tx:
            if self.store.backend == "sqlite":
                cutoff = (dt.datetime.now(dt.UTC) - KEEP_CHANGES).isoformat()
                tx.execute("DELETE FROM template_changes WHERE changed_at < ?", (cutoff,))
            else:
                tx.execute(
                    "DELETE FROM template_changes"
                    " WHERE changed_at < clock_timestamp() - ?::interval",
                    (f"{KEEP_CHANGES.total_seconds():.0f} seconds",),
                )
