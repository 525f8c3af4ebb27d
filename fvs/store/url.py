"""Where state lives, named by one URL for the registry, the access rules and the audit trail.

``sqlite:///path/to/dir`` (the embedded default: today's data directory, one file per store)
or ``postgresql://user@host:port/dbname`` (psycopg 3 conninfo; several servers may share it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from fvs.errors import ErrorCode, FvsError

Backend = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class StoreLocation:
    backend: Backend
    # sqlite: the data directory; postgresql: the conninfo URL (password never logged).
    sqlite_dir: Path | None = None
    dsn: str | None = None

    def redacted(self) -> str:
        """The location for logs and messages: a PostgreSQL password is masked."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_dir}"
        parts = urlsplit(self.dsn or "")
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.dsn or ""


def parse_store_url(url: str | None, data_dir: Path) -> StoreLocation:
    """``None`` or empty means the SQLite files in ``data_dir``."""
    if not url:
        return StoreLocation("sqlite", sqlite_dir=Path(data_dir))
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise FvsError(
            ErrorCode.INVALID_REQUEST,
            f"store URL {url!r} must start with sqlite:/// or postgresql://",
        )
    scheme = scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative/dir and sqlite:////abs/dir, as SQLAlchemy reads them.
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise FvsError(ErrorCode.INVALID_REQUEST, "sqlite store URL names no directory")
        return StoreLocation("sqlite", sqlite_dir=Path(path))
    if scheme in ("postgresql", "postgres"):
        return StoreLocation("postgresql", dsn=f"postgresql://{rest}")
    raise FvsError(
        ErrorCode.INVALID_REQUEST,
        f"unsupported store URL scheme {scheme!r}: use sqlite:/// or postgresql://",
    )
