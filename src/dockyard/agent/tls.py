"""The agent's TLS: a self-signed certificate made on its first start, and its fingerprint,
which the control plane pins (no CA: the fingerprint is the identity)."""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 3650


@dataclass(frozen=True)
class CertificateFiles:
    """Where an agent keeps its certificate and private key, inside its state directory."""

    state_dir: Path

    @property
    def certificate(self) -> Path:
        return self.state_dir / "tls" / "agent.crt"

    @property
    def private_key(self) -> Path:
        return self.state_dir / "tls" / "agent-key.pem"


def fingerprint_of(der: bytes) -> str:
    """SHA-256 of a DER certificate as `AB:CD:...` (95 characters), as openssl prints it."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def fingerprint_of_file(certificate: Path) -> str:
    pem = certificate.read_text()
    return fingerprint_of(ssl.PEM_cert_to_DER_cert(pem))


def ensure_certificate(files: CertificateFiles) -> str:
    """The agent's certificate, made (with a 0600 key) unless it exists; its fingerprint."""
    if not files.certificate.exists():
        _write_certificate(files)
    return fingerprint_of_file(files.certificate)


@dataclass(frozen=True)
class CertificatePair:
    """A new certificate and its private key (PEM), and the certificate's fingerprint."""

    certificate_pem: str
    private_key_pem: str
    fingerprint: str


def new_certificate() -> CertificatePair:
    """A self-signed certificate for an agent, in memory (the control plane makes one for a
    server it provisions, so it pins the fingerprint without trust on first use)."""
    from cryptography import x509  # only when a certificate is made: not at every start
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard-agent")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return CertificatePair(certificate.public_bytes(serialization.Encoding.PEM).decode(),
                           key_pem.decode(),
                           fingerprint_of(certificate.public_bytes(serialization.Encoding.DER)))


def _write_certificate(files: CertificateFiles) -> None:
    pair = new_certificate()
    files.certificate.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(files.private_key, pair.private_key_pem.encode())
    _write_private(files.certificate, pair.certificate_pem.encode())


def _write_private(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.replace(temporary, path)


def fetch_fingerprint(host: str, port: int, timeout: float = 5.0) -> str:
    """The fingerprint of the certificate an agent presents now (trust on first use)."""
    pem = ssl.get_server_certificate((host, port), timeout=timeout)
    return fingerprint_of(ssl.PEM_cert_to_DER_cert(pem))
