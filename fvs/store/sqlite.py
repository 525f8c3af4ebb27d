"""SQLite (WAL) implementation of the civil-registration store, the embedded default."""

from __future__ import annotations

from pathlib import Path

from fvs.store.crypto import TemplateCipher
from fvs.store.db import SqliteDatabase
from fvs.store.migrate import SQLITE_FILES, check
from fvs.store.registry import SqlCitizenStore
from fvs.store.schema import REGISTRY_MIGRATIONS

DB_FILE = SQLITE_FILES["registry"]


class SqliteStore(SqlCitizenStore):
    """The registry in ``data_dir/registry.sqlite3`` (created at the current schema when new;
    an older schema is refused until ``fvs db migrate``)."""

    def __init__(
        self, data_dir: Path, cipher: TemplateCipher | None = None, encoding: str = "f32"
    ) -> None:
        # 8 KiB pages hold three 512-d templates; at 4 KiB each 2 KiB template takes a page.
        db = SqliteDatabase(Path(data_dir) / DB_FILE, page_size=8192)
        try:
            check(db, "registry", REGISTRY_MIGRATIONS, f"fvs db migrate --data-dir {data_dir}")
        except BaseException:
            db.close()
            raise
        super().__init__(db, cipher, encoding)
        self.path = db.path
