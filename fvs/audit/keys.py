"""Secret keys kept in ``data_dir/keys/`` (created on first use, mode 0600)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from fvs.errors import ConfigError

KEY_BYTES = 32


def load_or_create_key(folder: Path, name: str) -> bytes:
    path = folder / f"{name}.key"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            data = path.read_bytes()
        else:
            data = secrets.token_bytes(KEY_BYTES)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot read or create key {path}: {exc}") from exc
    if len(data) != KEY_BYTES:
        raise ConfigError(f"key {path} is {len(data)} bytes, expected {KEY_BYTES}")
    return data


def citizen_hash(key: bytes, citizen_id: str) -> str:
    """Keyed hash of a citizen ID: the audit trail never holds the ID itself."""
    if not citizen_id:
        return ""
    return hmac.new(key, citizen_id.encode("ascii", "replace"), hashlib.sha256).hexdigest()
