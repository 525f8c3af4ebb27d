"""Seed inputs for each fuzz target, written to tests/fuzz/corpus/<target>/seed-*.

python -m tests.fuzz.seeds   (scripts/fuzz.sh runs it; the files are committed, each small)
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from PIL import Image

from fvs import receipts
from fvs.api.v1 import admin_pb2, verification_pb2
from fvs.audit.log import AuditLog
from fvs.domain import Consent, Face, Timings, VerifyRequest, VerifyResult
from tests.hostile_images import corpus

CORPUS = Path(__file__).resolve().parent / "corpus"


def _images() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    pixels = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    out: dict[str, bytes] = {}
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp")):
        buffer = io.BytesIO()
        pixels.save(buffer, fmt)
        out[f"tiny.{ext}"] = buffer.getvalue()
    rgba = io.BytesIO()
    pixels.convert("RGBA").save(rgba, "PNG")
    out["tiny_rgba.png"] = rgba.getvalue()
    hostile = corpus()
    for name in ("bomb_png_header_50000x50000.png", "truncated_jpeg_header.jpg", "grey_16bit.png"):
        out[name] = hostile[name]
    return out


def _requests() -> dict[str, bytes]:
    ok = verification_pb2.VerifyRequest(
        citizen_id="3100600445635", image=b"\xff\xd8\xff\xd9", purpose="KYC", request_id="r-1"
    )
    ok.consent.reference = "FORM-1"
    ok.consent.given_at.seconds = 1_780_000_000
    long_ref = verification_pb2.VerifyRequest()
    long_ref.CopyFrom(ok)
    long_ref.consent.reference = "C" * 1000
    bad_time = verification_pb2.VerifyRequest()
    bad_time.CopyFrom(ok)
    bad_time.consent.given_at.seconds = 253_402_300_800
    bad_time.consent.given_at.nanos = -1
    return {
        "ok.bin": ok.SerializeToString(),
        "long_ref.bin": long_ref.SerializeToString(),
        "bad_time.bin": bad_time.SerializeToString(),
    }


def _admin() -> dict[str, bytes]:
    grant = admin_pb2.GrantPermitRequest(agency_code="BANK-A", purposes=["KYC"])
    grant.valid_until.seconds = 1_900_000_000
    grant.valid_from.nanos = 5
    return {"grant.bin": grant.SerializeToString()}


def _audit() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="fvs-seed-") as folder:
        log = AuditLog(Path(folder), b"k" * 32)
        log.append({"operation": "Verify", "outcome": "OK", "details": {}})
        log.append({"operation": "Admin/AddAgency", "outcome": "REFUSED", "details": {"a": "b"}})
        log.close()
        chain = log.path.read_bytes()
    return {"chain.jsonl": chain, "cut.jsonl": chain[: len(chain) - 7]}


def _datasets() -> dict[str, bytes]:
    return {
        "pairs_view1.txt": b"2\nA_B\t1\t2\nA_B\t1\tC_D\t1\nA_B 2 1\nC_D 1 A_B 2\n",
        "pairs_folds.txt": b"2 1\nA_B 1 2\nA_B 1 C_D 1\nA_B 2 1\nC_D 1 A_B 1\n",
        "errata.tsv": b"file\tproblem\tsuggestion\nA_B/A_B_0001.jpg\tblurry\texclude\n"
        b"C_D/*\tsame person as A_B_x\talias\n",
    }


def _pems() -> dict[str, bytes]:
    key = ec.derive_private_key(1234567, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seed")])
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(when)
        .not_valid_after(when + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    public = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    return {
        "cert.pem": cert.public_bytes(serialization.Encoding.PEM),
        "csr.pem": csr.public_bytes(serialization.Encoding.PEM),
        "ed25519.pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


def _receipts() -> dict[str, bytes]:
    signer = receipts.ReceiptSigner(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)), b"k")
    request = VerifyRequest("3100600445635", b"img", "KYC", Consent("F-1", None), "r-1")
    face = Face((0.0, 0.0, 1.0, 1.0), ((0.0, 0.0),) * 5, 0.9)
    result = VerifyResult(80.0, 0.5, "m", face, "r-1", 1, "cal", Timings())
    signed = signer.issue(request, result, "BANK-A", "BANK-A/gw", dt.datetime(2026, 1, 1))
    return {"signed.bin": bytes([len(signed.signature)]) + signed.signature + signed.payload}


SEEDS = {
    "decode_image": _images,
    "verify_request": _requests,
    "admin_times": _admin,
    "citizen_id": lambda: {
        "valid.txt": b"3100600445635",
        "thai_digit.txt": "310060044563\u0665".encode(),
    },
    "audit_reader": _audit,
    "dataset_files": _datasets,
    "pem": _pems,
    "receipt": _receipts,
}


def write() -> None:
    for target, make in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in make().items():
            (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    write()
