"""Templates encrypted at rest (ISO/IEC 24745 spirit): AES-256-GCM with the citizen ID, the
template version, the model id and the encoding as associated data, so a template row copied
onto another citizen (or another version) fails to decrypt and is never compared.

The keys live in a key file, never in the database. Each line is one key::

    fvs-template-key 1 <key id> <base64 of 32 bytes>

the last line is the one new templates are sealed with; older lines stay so that rows sealed
before a rotation still open (``fvs registry rotate-key`` re-seals them, online). A key id is
derived from the key (a hash), so a row naming a key id can only be opened by that very key,
and a wrong key file is caught at start. The file must be private (0600): refused otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fvs.errors import ConfigError, ErrorCode, FvsError

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
MAGIC = "fvs-template-key"
PLAINTEXT = ""  # key id of rows written before encryption (upgraded by rotate-key)


def key_id_of(key: bytes) -> str:
    return "k" + hashlib.sha256(b"fvs-template-key-id\x00" + key).hexdigest()[:15]


def _parse(path: Path, text: str) -> list[tuple[str, bytes]]:
    keys: list[tuple[str, bytes]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 4 or parts[0] != MAGIC or parts[1] != "1":
                raise ValueError("not a template key line")
            key = base64.b64decode(parts[3], validate=True)
            if len(key) != KEY_BYTES:
                raise ValueError(f"key is {len(key)} bytes, not {KEY_BYTES}")
            if key_id_of(key) != parts[2]:
                raise ValueError("key id does not match the key")
        except ValueError as exc:
            raise ConfigError(f"template key file {path} line {n}: {exc}") from exc
        keys.append((parts[2], key))
    if not keys:
        raise ConfigError(f"template key file {path} holds no key")
    return keys


def write_new_key(path: Path) -> str:
    """Append a fresh key to ``path`` (created 0600 if missing); it becomes the current one.
    Returns its key id."""
    key = secrets.token_bytes(KEY_BYTES)
    kid = key_id_of(key)
    line = f"{MAGIC} 1 {kid} {base64.b64encode(key).decode()}\n"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return kid


class TemplateCipher:
    """Seals and opens template payloads with the keys of one key file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime = 0.0
        self._keys: dict[str, AESGCM] = {}
        self.current = ""
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"template key file {self.path} does not exist: make one with "
                f"`fvs registry new-key --out {self.path}` and give the same file to every "
                "server (--template-key-file or FVS_STORE__TEMPLATE_KEY_FILE)"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read template key file {self.path}: {exc}") from exc
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ConfigError(
                f"template key file {self.path} is readable by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 600 it"
            )
        keys = _parse(self.path, text)
        with self._lock:
            self._keys = {kid: AESGCM(key) for kid, key in keys}
            self.current = keys[-1][0]
            self._mtime = st.st_mtime

    def refresh(self) -> None:
        """Re-read the key file if it changed (a key added for a rotation); a file that
        became unreadable or invalid is ignored here (the keys already loaded stay)."""
        try:
            changed = self.path.stat().st_mtime != self._mtime
        except OSError:
            return
        if changed:
            try:
                self._load()
            except ConfigError as exc:
                log.error("template key file not reloaded: %s", exc)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @staticmethod
    def associated_data(citizen_id: str, version: int, model_id: str, encoding: str) -> bytes:
        return f"fvs-template\x00{citizen_id}\x00{version}\x00{model_id}\x00{encoding}".encode()

    def seal(self, payload: bytes, aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce || ciphertext || tag) under the current key (the key file is
        re-read when it changed: a key added for a rotation is used from then on)."""
        return self.seal_many([payload], [aad])[0]

    def seal_many(self, payloads: list[bytes], aads: list[bytes]) -> list[tuple[str, bytes]]:
        """:meth:`seal` of each payload with its associated data; the key file is checked
        once for them all."""
        self.refresh()
        kid = self.current
        aes = self._keys[kid]
        out = []
        for payload, aad in zip(payloads, aads, strict=True):
            nonce = secrets.token_bytes(NONCE_BYTES)
            out.append((kid, nonce + aes.encrypt(nonce, payload, aad)))
        return out

    def open_into(self, key_id: str, blob: memoryview, aad: bytes, out: memoryview) -> None:
        """``open`` straight into ``out`` (exactly the payload's length), for large payloads
        (index snapshots): no copy. ``out`` holds garbage when it fails; discard it."""
        aes = self._aes(key_id)
        try:
            aes.decrypt_into(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad, out)
        except (InvalidTag, ValueError) as exc:
            raise FvsError(ErrorCode.TEMPLATE_INTEGRITY, "sealed data failed its check") from exc

    def _aes(self, key_id: str) -> AESGCM:
        aes = self._keys.get(key_id)
        if aes is None:
            self.refresh()
            aes = self._keys.get(key_id)
        if aes is None:
            raise FvsError(
                ErrorCode.TEMPLATE_INTEGRITY,
                f"the enrolled template is sealed with key {key_id}, which the template key "
                "file lacks",
                key_id=key_id,
            )
        return aes

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        """The payload; TEMPLATE_INTEGRITY when it was not sealed for this record with this
        key (moved, edited, or a key the file lacks)."""
        aes = self._aes(key_id)
        try:
            return aes.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise FvsError(
                ErrorCode.TEMPLATE_INTEGRITY,
                "the enrolled template failed its integrity check (altered, or not this "
                "citizen's); it is not compared: re-enrol the citizen",
            ) from exc
