"""Encrypted snapshots of named numpy arrays, so that a server starts from a file instead of
re-reading (and re-opening) every template in the store.

What is in a snapshot is derived from templates (the template index's rows; the 1:N search
index), so it is sealed like a template: AES-256-GCM under the store's template key
(:class:`fvs.store.crypto.TemplateCipher`); nothing of it sits on disk in clear. The file is::

    b"FVSSNAP1\\n"  u32 header length  header (JSON, in clear: array names, dtypes, shapes,
                                        the binding, the key id; authenticated, not secret)
    records: u32 length  nonce || ciphertext || tag     (each record at most CHUNK bytes)

Record 0 holds the caller's metadata (JSON), then each array's bytes in order, cut into
records, then an empty final record. Every record's associated data names the header's
digest, the record's number and whether it is the last, so a record edited, dropped,
reordered, moved from another snapshot or cut off at the end fails to open. The header binds
the snapshot to what it was made from (``expect``: the store's identity, the model id, the
index encoding, ...): a snapshot of another store or model is refused even under the same key.

``load_snapshot`` answers None, with a log line saying why, for any snapshot it cannot vouch
for (missing, truncated, tampered, another store, model or key): the caller rebuilds from the
store, so a bad snapshot costs time, never a wrong answer. Written to a temporary file,
fsynced and renamed over the old one, so a crash mid-write leaves the previous snapshot.
Memory stays bounded: one record (CHUNK bytes) in flight besides the arrays themselves.

Any index that serialises to bytes fits, e.g. a faiss index::

    save_snapshot(path, {"faiss": faiss.serialize_index(index)}, meta, cipher, binding)
    arrays, meta = load_snapshot(path, cipher, binding) or rebuild()
    index = faiss.deserialize_index(arrays["faiss"])
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from fvs.errors import FvsError
from fvs.store.crypto import TemplateCipher
from fvs.store.db import FILE_MODE, private_dir

log = logging.getLogger(__name__)

MAGIC = b"FVSSNAP1\n"
FORMAT = 1
CHUNK = 32 << 20  # bytes of plaintext a record
_LEN = struct.Struct("<I")
_OVERHEAD = 12 + 16  # a record's nonce and tag
_MAX_HEADER = 1 << 20
_MAX_CHUNK = 1 << 28

Array = npt.NDArray[Any]
# (name, shape, dtype) -> a C-contiguous array of that shape and dtype to fill (a caller that
# wants room to grow returns a view of the first rows of a larger array)
Allocator = Callable[[str, tuple[int, ...], np.dtype[Any]], Array]


class SnapshotError(Exception):
    """Why a snapshot cannot be used (logged by load_snapshot, which then answers None)."""


def _aad(digest: bytes, number: int, final: bool) -> bytes:
    return b"fvs-snapshot\x00" + digest + struct.pack("<QB", number, int(final))


def _flat_bytes(array: Array) -> npt.NDArray[np.uint8]:
    return array.reshape(-1).view(np.uint8)


class _Writer:
    def __init__(self, out: BinaryIO, cipher: TemplateCipher, key_id: str, digest: bytes):
        self.out, self.cipher, self.key_id, self.digest = out, cipher, key_id, digest
        self.number = 0

    def record(self, payload: bytes, final: bool = False) -> None:
        kid, blob = self.cipher.seal(payload, _aad(self.digest, self.number, final))
        if kid != self.key_id:  # the key file gained a key mid-write: start again later
            raise SnapshotError(f"the template key changed while writing ({self.key_id} -> {kid})")
        self.out.write(_LEN.pack(len(blob)))
        self.out.write(blob)
        self.number += 1


def save_snapshot(
    path: Path,
    arrays: Mapping[str, Array],
    meta: Mapping[str, Any],
    cipher: TemplateCipher,
    binding: Mapping[str, Any],
) -> int:
    """Write ``arrays`` and ``meta`` (JSON-able) to ``path`` atomically, sealed under the
    cipher's current key and bound to ``binding`` (JSON-able: what ``load_snapshot``'s
    ``expect`` must equal). Returns the bytes written. Raises OSError or SnapshotError (the
    previous snapshot, if any, is left as it was). Arrays are read in place, a record at a
    time (a non-contiguous one is copied whole first)."""
    meta_bytes = json.dumps(dict(meta), sort_keys=True).encode()
    if len(meta_bytes) > CHUNK:
        raise SnapshotError(f"metadata of {len(meta_bytes)} bytes: at most {CHUNK}")
    cipher.refresh()
    key_id = cipher.current
    specs = []
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise SnapshotError(f"array {name!r} holds Python objects")
        specs.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape)})
    header = json.dumps(
        {
            "format": FORMAT,
            "key_id": key_id,
            "chunk": CHUNK,
            "binding": dict(binding),
            "arrays": specs,
        },
        sort_keys=True,
    ).encode()
    digest = hashlib.sha256(header).digest()
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            out.write(MAGIC + _LEN.pack(len(header)) + header)
            writer = _Writer(out, cipher, key_id, digest)
            writer.record(meta_bytes)
            for array in arrays.values():
                flat = _flat_bytes(np.ascontiguousarray(array))
                for start in range(0, flat.shape[0], CHUNK):
                    writer.record(flat[start : start + CHUNK].tobytes())
            writer.record(b"", final=True)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return size


class _Reader:
    def __init__(
        self, src: io.FileIO, cipher: TemplateCipher, key_id: str, digest: bytes, chunk: int
    ):
        self.src, self.cipher, self.key_id, self.digest = src, cipher, key_id, digest
        self.number = 0
        self.chunk = chunk
        self._buffer = bytearray(chunk + _OVERHEAD)  # one record's ciphertext, reused

    def _next(self) -> memoryview:
        head = self.src.read(_LEN.size)
        if len(head) < _LEN.size:
            raise SnapshotError(f"truncated at record {self.number}")
        (length,) = _LEN.unpack(head)
        if not _OVERHEAD <= length <= self.chunk + _OVERHEAD:
            raise SnapshotError(f"record {self.number} claims {length} bytes")
        blob = memoryview(self._buffer)[:length]
        if self.src.readinto(blob) != length:
            raise SnapshotError(f"truncated in record {self.number}")
        return blob

    def record(self, final: bool = False) -> bytes:
        """The next record's payload."""
        payload = bytearray(len(blob := self._next()) - _OVERHEAD)
        self._open(blob, final, memoryview(payload))
        return bytes(payload)

    def record_into(self, out: memoryview) -> int:
        """The next record's payload written at the start of ``out``; its length."""
        blob = self._next()
        n = len(blob) - _OVERHEAD
        if n == 0 or n > len(out):
            raise SnapshotError(f"record {self.number} does not fit its array")
        self._open(blob, False, out[:n])
        return n

    def _open(self, blob: memoryview, final: bool, out: memoryview) -> None:
        try:
            self.cipher.open_into(self.key_id, blob, _aad(self.digest, self.number, final), out)
        except FvsError as exc:
            raise SnapshotError(f"record {self.number} fails its integrity check") from exc
        self.number += 1


def _default_allocate(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Array:
    return np.empty(shape, dtype=dtype)


def load_snapshot(
    path: Path,
    cipher: TemplateCipher,
    expect: Mapping[str, Any],
    allocate: Allocator | None = None,
    check_meta: Callable[[dict[str, Any]], str | None] | None = None,
) -> tuple[dict[str, Array], dict[str, Any]] | None:
    """(arrays, meta) of the snapshot at ``path`` when it opens with ``cipher`` and was bound
    to exactly ``expect``; None (and a log line saying why) otherwise: the caller rebuilds.
    ``check_meta`` sees the metadata before any array is read and may refuse the snapshot
    by naming a reason (it is out of date, say)."""
    try:
        return _load(path, cipher, expect, allocate or _default_allocate, check_meta)
    except FileNotFoundError:
        log.info("no snapshot at %s", path)
    except SnapshotError as exc:
        log.warning("snapshot %s not used: %s; rebuilding", path, exc)
    except (OSError, ValueError, TypeError, KeyError, MemoryError) as exc:
        log.warning("snapshot %s not used: unreadable (%s); rebuilding", path, exc)
    return None


def _load(
    path: Path,
    cipher: TemplateCipher,
    expect: Mapping[str, Any],
    allocate: Allocator,
    check_meta: Callable[[dict[str, Any]], str | None] | None,
) -> tuple[dict[str, Array], dict[str, Any]]:
    with path.open("rb", buffering=0) as src:
        magic = src.read(len(MAGIC))
        if magic != MAGIC:
            short = len(magic) < len(MAGIC) and MAGIC.startswith(magic)
            raise SnapshotError("truncated header" if short else "not an FVS snapshot")
        head = src.read(_LEN.size)
        if len(head) < _LEN.size:
            raise SnapshotError("truncated header")
        (length,) = _LEN.unpack(head)
        if length > _MAX_HEADER:
            raise SnapshotError("header too large")
        header_bytes = src.read(length)
        if len(header_bytes) < length:
            raise SnapshotError("truncated header")
        header = json.loads(header_bytes)
        if header.get("format") != FORMAT:
            raise SnapshotError(f"format {header.get('format')!r}, not {FORMAT}")
        binding = header.get("binding")
        if binding != json.loads(json.dumps(dict(expect), sort_keys=True)):
            differ = sorted(
                k
                for k in set(binding or {}) | set(expect)
                if (binding or {}).get(k) != expect.get(k)
            )
            raise SnapshotError(
                f"made for another {', '.join(differ)} "
                f"({', '.join(f'{k}={(binding or {}).get(k)!r}' for k in differ)}; "
                f"this one has {', '.join(f'{k}={expect.get(k)!r}' for k in differ)})"
            )
        key_id = str(header["key_id"])
        if key_id not in cipher.key_ids:
            cipher.refresh()
            if key_id not in cipher.key_ids:
                raise SnapshotError(f"sealed with key {key_id}, which the template key file lacks")
        chunk = header.get("chunk")
        if not isinstance(chunk, int) or not 0 < chunk <= _MAX_CHUNK:
            raise SnapshotError(f"record size {chunk!r}")
        reader = _Reader(src, cipher, key_id, hashlib.sha256(header_bytes).digest(), chunk)
        meta = json.loads(reader.record())
        if not isinstance(meta, dict):
            raise SnapshotError("metadata is not an object")
        refused = check_meta(meta) if check_meta is not None else None
        if refused:
            raise SnapshotError(refused)
        arrays: dict[str, Array] = {}
        for spec in header["arrays"]:
            dtype = np.dtype(spec["dtype"])
            if dtype.hasobject:
                raise SnapshotError("an array of Python objects")
            shape = tuple(int(n) for n in spec["shape"])
            array = allocate(str(spec["name"]), shape, dtype)
            if array.shape != shape or array.dtype != dtype or not array.flags.c_contiguous:
                raise ValueError(f"allocator gave {array.shape} {array.dtype} for {spec['name']}")
            flat = _flat_bytes(array).data  # decrypted straight into the array
            filled = 0
            while filled < len(flat):
                filled += reader.record_into(flat[filled:])
            arrays[str(spec["name"])] = array
        if reader.record(final=True) != b"":
            raise SnapshotError("no end record")
        if src.read(1):
            raise SnapshotError("data after the end record")
        return arrays, meta
