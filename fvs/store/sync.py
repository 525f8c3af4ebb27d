"""Keeping each server's template index in step with the others on one PostgreSQL database.

Every enrolment and erasure appends the citizen to ``template_changes`` and sends
``NOTIFY fvs_templates, '<citizen id>'`` in its own transaction (PostgreSQL delivers it at
commit, to every listening server). A server re-reads that citizen's active template from the
database and puts it in (or takes it out of) its index: the database is the truth, so a late
or repeated notification is harmless and the order in which they arrive does not matter.

Notifications are not stored: a server that was disconnected (or still loading its index)
reads the change log since its last catch-up, less a margin, when it (re)connects. ``poll``
mode reads the change log every ``interval`` instead of listening (README "Storage backends"
compares the two by measurement).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable

from fvs.errors import FvsError
from fvs.store.index import TemplateIndex
from fvs.store.registry import BULK_CHANGE, NOTIFY_CHANNEL, SqlCitizenStore

log = logging.getLogger(__name__)

# Change-log rows older than the last catch-up are read again this far back: a transaction
# that took its timestamp before the catch-up but committed after it is not missed.
CATCH_UP_MARGIN = dt.timedelta(seconds=30)
# How long the change log keeps a change (a server disconnected for longer reloads its index).
KEEP_CHANGES = dt.timedelta(days=1)


class IndexSync:
    def __init__(
        self,
        store: SqlCitizenStore,
        index: TemplateIndex,
        since: dt.datetime,
        mode: str = "notify",
        interval_s: float = 0.25,
    ) -> None:
        self.store = store
        self.index = index
        self.mode = mode
        self.interval_s = interval_s
        self._since = since
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fvs-index-sync", daemon=True)
        self.applied = 0  # changes applied (for tests and metrics)

    @staticmethod
    def database_time(store: SqlCitizenStore) -> dt.datetime:
        """The database's clock (taken before an index load, to catch up from)."""
        value = store.db.read("SELECT clock_timestamp()")[0][0]
        assert isinstance(value, dt.datetime)
        return value

    def start(self) -> None:
        self._thread.start()

    def caught_up(self) -> dt.datetime:
        """Database time before which every change is in the index (the last catch-up; at
        first, the time taken before the index was loaded)."""
        return self._since

    def stop(self) -> None:
        self._stop.set()  # the listener wakes at least once a second to see it
        self._thread.join(timeout=5)

    # --------------------------------------------------------------------------------------
    def refresh(self, citizen_ids: Iterable[str]) -> None:
        """Put each citizen's active template (or its absence) into the index."""
        for cid in dict.fromkeys(citizen_ids):
            if cid == BULK_CHANGE:  # a bulk load: its citizens join at the next index load
                continue
            try:
                template = self.store.active_template(cid)
            except FvsError as exc:
                if exc.code.value == "TEMPLATE_INTEGRITY":
                    self.index.remove(cid)  # verifying reads the store and gets the reason
                    continue
                raise
            if template is None or template.model_id != self.index.model_id:
                self.index.remove(cid)
            elif self.index.version_of(cid) != template.version:
                self.index.put(cid, template.vector, template.version)
            self.applied += 1

    def catch_up(self) -> None:
        now = self.database_time(self.store)
        rows = self.store.db.read(
            "SELECT DISTINCT citizen_id FROM template_changes WHERE changed_at > ?",
            (self._since - CATCH_UP_MARGIN,),
        )
        self.refresh(str(r[0]) for r in rows)
        self._since = now

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.mode == "poll":
                    self.catch_up()
                    self._stop.wait(self.interval_s)
                else:
                    self._listen()
            except Exception as exc:  # the database went away: retry
                if self._stop.is_set():
                    return
                log.warning("template index sync: %s; retrying", exc)
                self._stop.wait(1.0)

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
                if time.monotonic() - last_catch_up > 60:  # belt and braces, once a minute
                    self.catch_up()
                    self._prune()
                    last_catch_up = time.monotonic()

    def _prune(self) -> None:
        with self.store.db.tx() as tx:
            tx.execute(
                "DELETE FROM template_changes WHERE changed_at < clock_timestamp() - ?::interval",
                (f"{KEEP_CHANGES.total_seconds():.0f} seconds",),
            )
