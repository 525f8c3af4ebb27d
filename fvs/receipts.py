"""Signed verification receipts: what FVS answered, to whom and when, provable later.

Each Verify answer carries the canonical JSON of its claims and the service's Ed25519
signature over exactly those bytes. Anyone with the service's public key checks a receipt
offline (``fvs receipt verify``); nobody without the private key can make or alter one.

The signing key is kept apart from the CA's keys: ``fvs pki init`` writes it to the
server's folder (``server/receipt.key``, its public half to ``receipt-public.pem``); a server
without one creates ``data_dir/keys/receipt.key`` on first start (public half next to it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fvs.domain import VerifyRequest, VerifyResult
from fvs.errors import ConfigError, ErrorCode, FvsError

FORMAT = 1
KEY_FILE = "receipt.key"
PUBLIC_FILE = "receipt-public.pem"


@dataclass(frozen=True)
class Receipt:
    payload: bytes  # canonical JSON of the claims
    signature: bytes  # Ed25519 over payload
    key_id: str


def canonical(claims: dict[str, Any]) -> bytes:
    return json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public: ed25519.Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def citizen_pseudonym(citizen_key: bytes, agency: str, citizen_id: str) -> str:
    """The citizen in a receipt: keyed per agency, so two agencies' receipts do not link;
    the authority (holding the key) can still tie a receipt to its audit record."""
    message = f"receipt\0{agency}\0{citizen_id}".encode("ascii", "replace")
    return hmac.new(citizen_key, message, hashlib.sha256).hexdigest()


class ReceiptSigner:
    def __init__(self, key: ed25519.Ed25519PrivateKey, citizen_key: bytes) -> None:
        self._key = key
        self.citizen_key = citizen_key
        self.public_key = key.public_key()
        self.key_id = key_id(self.public_key)

    def issue(
        self,
        request: VerifyRequest,
        result: VerifyResult,
        agency: str,
        system: str,
        now: dt.datetime | None = None,
    ) -> Receipt:
        consent = request.consent
        claims: dict[str, Any] = {
            "v": FORMAT,
            "request_id": result.request_id,
            "time": (now or dt.datetime.now(dt.UTC)).isoformat(),
            "agency": agency,
            "system": system,
            "citizen": citizen_pseudonym(self.citizen_key, agency, request.citizen_id),
            "image_sha256": hashlib.sha256(request.image).hexdigest(),
            "purpose": request.purpose,
            "consent_sha256": hashlib.sha256(consent.reference.encode()).hexdigest()
            if consent is not None
            else "",
            "consent_given_at": consent.given_at.isoformat()
            if consent is not None and consent.given_at is not None
            else "",
            "match_score": round(result.match_score, 4),
            "similarity": round(result.similarity, 6),
            "false_match_rate": result.false_match_rate,
            "model": result.model,
            "score_mapping": result.score_mapping,
            "template_version": result.template_version,
            "key_id": self.key_id,
        }
        payload = canonical(claims)
        return Receipt(payload, self._key.sign(payload), self.key_id)


def check(payload: bytes, signature: bytes, public_key: ed25519.Ed25519PublicKey) -> dict[str, Any]:
    """The claims of a receipt whose signature ``public_key`` verifies; else INVALID_REQUEST
    (tampered, made with another key, or not a receipt)."""
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise FvsError(
            ErrorCode.INVALID_REQUEST,
            "the signature does not match: the receipt was altered or signed by another key",
            problem="bad_signature",
        ) from None
    try:
        claims: dict[str, Any] = json.loads(payload)
    except ValueError:
        raise FvsError(ErrorCode.INVALID_REQUEST, "the receipt payload is not JSON") from None
    if not isinstance(claims, dict) or claims.get("v") != FORMAT:
        raise FvsError(ErrorCode.INVALID_REQUEST, "not a receipt of a known format")
    return claims


def load_public_key(pem: bytes) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # found by fuzzing
        raise FvsError(ErrorCode.INVALID_REQUEST, "not a usable PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise FvsError(ErrorCode.INVALID_REQUEST, "the receipt key must be an Ed25519 key")
    return key


def _load_private(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"cannot load the receipt signing key {path}: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"the receipt signing key {path} is not an Ed25519 key")
    return key


def load_or_create_key(tls_dir: Path | None, keys_dir: Path) -> ed25519.Ed25519PrivateKey:
    """The server's receipt key: ``tls_dir/receipt.key`` (from `fvs pki init`) when present,
    else ``keys_dir/receipt.key``, created on first use (mode 0600, public half beside it)."""
    if tls_dir is not None and (tls_dir / KEY_FILE).exists():
        return _load_private(tls_dir / KEY_FILE)
    path = keys_dir / KEY_FILE
    if path.exists():
        return _load_private(path)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (keys_dir / PUBLIC_FILE).write_bytes(public)
    except FileExistsError:  # another process made it first
        return _load_private(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the receipt signing key {path}: {exc}") from exc
    return key
