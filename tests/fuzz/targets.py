"""Fuzz targets: each takes arbitrary bytes and either returns or raises the one refusal its
code path documents. Anything else (another exception, a hang, unbounded memory) is a bug.

Run by ``scripts/fuzz.sh`` under atheris (coverage-guided); every file under
``tests/fuzz/corpus/<target>/`` (seeds and inputs that once failed) is replayed by
``tests/unit/test_fuzz_corpus.py`` in CI.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from fvs import citizen_id as cid
from fvs import receipts
from fvs.access.gate import Gate
from fvs.access.model import Caller
from fvs.access.policy import AccessPolicy, ConsentRules
from fvs.access.store import AccessStore
from fvs.api import convert
from fvs.api.v1 import admin_pb2, verification_pb2
from fvs.audit.log import verify_chain
from fvs.errors import ErrorCode, FvsError
from fvs.evaluation.dataset import Dataset, Errata, read_lfw_pairs
from fvs.intake import verify_call
from fvs.pipeline.decode import ImageLimits, decode_scaled
from fvs.pki import CertificateAuthority, fingerprint_of_pem, load_certificate

# Smaller than the service's limits so that each input decodes fast; the checks are the same.
FUZZ_LIMITS = ImageLimits(
    max_bytes=1024 * 1024,
    max_pixels=4_000_000,
    max_decoded_bytes=16 * 1024 * 1024,
    reduce_above_pixels=1_000_000,
)
MAX_RECORD_BYTES = 8192


@cache
def _scratch_root() -> Path:
    """One scratch folder per process: under $FVS_FUZZ_SCRATCH (scripts/fuzz.sh sets it and
    removes it; libFuzzer leaves without running atexit), else a temp dir removed at exit."""
    given = os.environ.get("FVS_FUZZ_SCRATCH")
    if given:
        root = Path(tempfile.mkdtemp(dir=given))
        return root
    holder = tempfile.TemporaryDirectory(prefix="fvs-fuzz-")
    atexit.register(holder.cleanup)
    return Path(holder.name)


def _scratch(name: str) -> Path:
    folder = _scratch_root() / name
    folder.mkdir(exist_ok=True)
    return folder


def decode_image(data: bytes) -> None:
    """Image decoding: a clean (H, W, 3) uint8 image or IMAGE_* refusal, nothing else."""
    try:
        image, factor = decode_scaled(data, FUZZ_LIMITS)
    except FvsError as error:
        assert error.code in {
            ErrorCode.IMAGE_MISSING,
            ErrorCode.IMAGE_TOO_LARGE,
            ErrorCode.IMAGE_UNDECODABLE,
        }, error.code
        assert "object at" not in error.message, error.message
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
    assert factor in (1, 2, 4, 8)
    assert image.shape[0] * image.shape[1] * factor * factor <= FUZZ_LIMITS.max_pixels * 4


class _ListAudit:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.path = Path("/nonexistent")

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records.append(record)
        return record

    def close(self) -> None:
        pass


@cache
def _gate() -> tuple[Gate, _ListAudit]:
    folder = _scratch("access")
    audit = _ListAudit()
    gate = Gate(AccessPolicy(AccessStore(folder), ConsentRules()), audit, b"k" * 32)  # type: ignore[arg-type]
    return gate, audit


def verify_request(data: bytes) -> None:
    """A Verify message from the wire: refused with a reason, and the audit record the gate
    writes for it is small and single-line, whatever the message held."""
    try:
        message = verification_pb2.VerifyRequest.FromString(data)
    except DecodeError:
        return
    domain, problem = convert.verify_request(message)
    request, facts = verify_call(domain, problem=problem)
    assert request.request_id
    gate, audit = _gate()
    caller = Caller(fingerprint="ab" * 32, peer="ipv4:127.0.0.1:1")  # registered nowhere
    try:
        gate.run(caller, facts, lambda _auth: None)
    except FvsError as error:
        assert error.code is not ErrorCode.INTERNAL
    record = json.dumps(audit.records.pop(), ensure_ascii=False)
    assert len(record.encode()) < MAX_RECORD_BYTES, len(record)
    assert "\n" not in record


def admin_times(data: bytes) -> None:
    """Timestamps of an admin message: a datetime or INVALID_REQUEST."""
    try:
        message = admin_pb2.GrantPermitRequest.FromString(data)
    except DecodeError:
        return
    for field in ("valid_from", "valid_until"):
        try:
            value = convert.optional_time(message, field)
        except FvsError as error:
            assert error.code is ErrorCode.INVALID_REQUEST
            continue
        assert value is None or value.tzinfo is not None


def citizen_id(data: bytes) -> None:
    """Citizen IDs: valid exactly when validate() passes; refusals are INVALID_CITIZEN_ID."""
    text = data.decode("utf-8", "replace")
    try:
        cid.validate(text)
        valid = True
    except FvsError as error:
        assert error.code is ErrorCode.INVALID_CITIZEN_ID
        valid = False
    assert cid.is_valid(text) == valid
    if len(text) == 12:
        try:
            assert 0 <= cid.check_digit(text) <= 9
        except ValueError:
            assert not (text.isascii() and text.isdigit())


@cache
def _audit_file() -> tuple[Path, bytes]:
    return _scratch("audit") / "audit.jsonl", b"k" * 32


def audit_reader(data: bytes) -> None:
    """`fvs audit verify` on any file: a verdict, never an exception."""
    path, key = _audit_file()
    path.write_bytes(data)
    check = verify_chain(path, key)
    assert check.ok or check.problem


@cache
def _dataset() -> tuple[Dataset, Path]:
    root = _scratch("dataset")
    images = ["A_B/A_B_0001.jpg", "A_B/A_B_0002.jpg", "C_D/C_D_0001.jpg"]
    return Dataset(root, images, [i.split("/")[0] for i in images]), root


def dataset_files(data: bytes) -> None:
    """LFW pairs files and errata: pairs and reported problems, never an exception."""
    dataset, root = _dataset()
    path = root / "pairs.txt"
    path.write_bytes(data)
    result = read_lfw_pairs(path, dataset)
    assert all(p.a in dataset.images and p.b in dataset.images for p in result.pairs)
    errata = Errata.read(path)
    assert isinstance(errata.excluded, frozenset)


@cache
def _ca() -> CertificateAuthority:
    return CertificateAuthority.create("Fuzz", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def pem(data: bytes) -> None:
    """Certificates, CSRs and receipt keys from PEM: parsed or INVALID_* refusals."""
    for parse in (load_certificate, fingerprint_of_pem, lambda d: _ca().sign_csr(d, "Fuzz")):
        try:
            parse(data)
        except FvsError as error:
            assert error.code is ErrorCode.INVALID_CERTIFICATE
    try:
        receipts.load_public_key(data)
    except FvsError as error:
        assert error.code is ErrorCode.INVALID_REQUEST


@cache
def _receipt_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()


def receipt(data: bytes) -> None:
    """`fvs receipt verify` on any payload and signature: claims or INVALID_REQUEST."""
    cut = data[0] % 65 if data else 0
    try:
        receipts.check(data[1 + cut :], data[1 : 1 + cut], _receipt_key())
    except FvsError as error:
        assert error.code is ErrorCode.INVALID_REQUEST


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decode_image": decode_image,
    "verify_request": verify_request,
    "admin_times": admin_times,
    "citizen_id": citizen_id,
    "audit_reader": audit_reader,
    "dataset_files": dataset_files,
    "pem": pem,
    "receipt": receipt,
}
