"""A deployment's private PKI: its CA, the server certificate, client certificates.

``fvs pki init DIR`` lays the files out so that the serving host never needs the CA's key:

- ``DIR/ca/``: ``ca.pem`` and ``ca.key``, the certificate authority (keep the key offline);
- ``DIR/server/``: ``server.pem``, ``server.key``, ``ca.pem`` and ``receipt.key`` (the
  Ed25519 key that signs verification receipts): all the server needs, ``--tls-dir``;
- ``DIR/clients/``: ``<name>.pem`` / ``<name>.key`` of issued clients (administrator, health
  probe) with a copy of ``ca.pem``;
- ``DIR/receipt-public.pem``: the receipt public key, for agencies to check receipts.

The server refuses to start from a folder that holds the CA's private key. Keys are EC P-256
(TLS) or Ed25519 (receipts), written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fvs.errors import ErrorCode, FvsError
from fvs.limits import shorten

CA_DAYS = 3650
LEAF_DAYS = 825
CA_DIR = "ca"
SERVER_DIR = "server"
CLIENTS_DIR = "clients"
RECEIPT_KEY = "receipt.key"
RECEIPT_PUBLIC = "receipt-public.pem"


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes | None
    fingerprint: str


def fingerprint(cert: x509.Certificate) -> str:
    """sha256 of the DER certificate, lower-case hex: how FVS identifies a client system."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise FvsError(
            ErrorCode.INVALID_CERTIFICATE, f"not a PEM certificate: {shorten(str(exc), 200)}"
        ) from None


def fingerprint_of_pem(pem: bytes) -> str:
    return fingerprint(load_certificate(pem))


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, folder: Path) -> CertificateAuthority:
        """The CA in ``folder`` (``ca.pem`` + ``ca.key``), or in ``folder/ca`` (the layout of
        ``fvs pki init``)."""
        if not (folder / "ca.key").exists() and (folder / CA_DIR / "ca.key").exists():
            folder = folder / CA_DIR
        try:
            cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
            key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise FvsError(
                ErrorCode.INVALID_CERTIFICATE, f"cannot load the CA from {folder}: {exc}"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise FvsError(ErrorCode.INVALID_CERTIFICATE, "the CA key is not an EC key")
        return cls(cert, key)

    @classmethod
    def create(cls, organisation: str, now: dt.datetime | None = None) -> CertificateAuthority:
        now = now or dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(f"{organisation} FVS CA", organisation)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def save(self, folder: Path) -> None:
        _write(folder / "ca.pem", self.pem)
        _write(folder / "ca.key", _key_pem(self.key), private=True)

    def issue(
        self,
        common_name: str,
        organisation: str,
        *,
        server_names: list[str] | None = None,
        public_key: ec.EllipticCurvePublicKey | None = None,
        not_before: dt.datetime | None = None,
        days: int = LEAF_DAYS,
    ) -> Issued:
        """A leaf certificate: a server one when ``server_names`` is given, else a client one.

        With ``public_key`` (from a CSR) no key is generated and ``key_pem`` is None.
        """
        key = None if public_key is not None else ec.generate_private_key(ec.SECP256R1())
        subject_key = public_key if public_key is not None else key.public_key()  # type: ignore[union-attr]
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organisation))
            .issuer_name(self.cert.subject)
            .public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if server_names:
            sans: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    sans.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=_key_pem(key) if key is not None else None,
            fingerprint=fingerprint(cert),
        )

    def sign_csr(self, csr_pem: bytes, organisation: str, days: int = LEAF_DAYS) -> Issued:
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
            valid = csr.is_signature_valid
            key = csr.public_key()
            names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
            # found by fuzzing: a CSR that parses may still hold a key or name that does not
            raise FvsError(
                ErrorCode.INVALID_CERTIFICATE, f"not a usable PEM CSR: {shorten(str(exc), 200)}"
            ) from None
        if not valid:
            raise FvsError(ErrorCode.INVALID_CERTIFICATE, "the CSR signature is invalid")
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise FvsError(ErrorCode.INVALID_CERTIFICATE, "only EC (P-256) keys are accepted")
        common_name = str(names[0].value) if names else "agency-system"
        return self.issue(common_name, organisation, public_key=key, days=days)


def verify_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> None:
    """Raise INVALID_CERTIFICATE unless ``cert`` was signed by ``ca_cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise FvsError(
            ErrorCode.INVALID_CERTIFICATE, "the certificate was not issued by this deployment's CA"
        ) from exc


def save_issued(issued: Issued, folder: Path, name: str) -> tuple[Path, Path | None]:
    cert_path = folder / f"{name}.pem"
    _write(cert_path, issued.cert_pem)
    key_path = None
    if issued.key_pem is not None:
        key_path = folder / f"{name}.key"
        _write(key_path, issued.key_pem, private=True)
    return cert_path, key_path


def server_dir(folder: Path) -> Path:
    """The serving host's folder (``--tls-dir``) in a PKI laid out by :func:`init_pki`."""
    return folder / SERVER_DIR


def clients_dir(folder: Path) -> Path:
    return folder / CLIENTS_DIR


def ed25519_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def init_pki(
    folder: Path, organisation: str, hosts: list[str]
) -> tuple[CertificateAuthority, Issued]:
    """Create a CA (``folder/ca``), and the server's certificate for ``hosts`` (plus
    localhost), its copy of the CA certificate and its receipt-signing key
    (``folder/server``)."""
    if (folder / "ca.key").exists() or (folder / CA_DIR / "ca.key").exists():
        raise FvsError(
            ErrorCode.ALREADY_EXISTS, f"{folder} already holds a CA; refusing to replace it"
        )
    ca = CertificateAuthority.create(organisation)
    ca.save(folder / CA_DIR)
    names = list(dict.fromkeys([*hosts, "localhost", "127.0.0.1", "::1"]))
    server = ca.issue("fvs-server", organisation, server_names=names)
    serving = server_dir(folder)
    save_issued(server, serving, "server")
    _write(serving / "ca.pem", ca.pem)
    receipt = ed25519.Ed25519PrivateKey.generate()
    _write(serving / RECEIPT_KEY, ed25519_key_pem(receipt), private=True)
    _write(serving / RECEIPT_PUBLIC, public_key_pem(receipt))
    _write(folder / RECEIPT_PUBLIC, public_key_pem(receipt))
    _write(clients_dir(folder) / "ca.pem", ca.pem)
    return ca, server


def ca_keys_in(folder: Path) -> list[Path]:
    """Files in ``folder`` that hold the private key of the CA whose certificate is
    ``folder/ca.pem``, any file named ``ca.key``, and encrypted private keys (which cannot be
    told apart from the CA's): a serving folder must hold none."""
    found: list[Path] = []
    try:
        ca_public = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes()).public_key()
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion):
        ca_public = None
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return found
    for path in entries:
        if path.name == "ca.key":
            found.append(path)
            continue
        try:
            data = path.read_bytes()[:65536]
        except OSError:
            continue
        if b"PRIVATE KEY" not in data or ca_public is None:
            continue
        try:
            key = serialization.load_pem_private_key(data, None)
        except TypeError:  # encrypted: it cannot be compared with the CA's, so it is refused
            found.append(path)
            continue
        except (ValueError, UnsupportedAlgorithm):
            continue  # not a private key
        if key.public_key() == ca_public:
            found.append(path)
    return found
