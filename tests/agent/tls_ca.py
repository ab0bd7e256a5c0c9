"""A certificate authority for tests: certificates for host names, signed by a key made here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.agent.models import CertificateInstall

PEM = serialization.Encoding.PEM


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Issued:
    certificate: x509.Certificate
    chain_pem: str  # the leaf, then the authority
    key: ec.EllipticCurvePrivateKey

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER)
                              ).hexdigest()

    def install(self, **options: bool) -> CertificateInstall:
        return CertificateInstall(certificate_pem=self.chain_pem, key_pem=key_pem(self.key),
                                  **options)


class Authority:
    """Self-signed; `pem` is what a client trusts."""

    def __init__(self) -> None:
        self.key = new_key()
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name("Dockyard test CA"))
            .issuer_name(_name("Dockyard test CA")).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.pem = self.certificate.public_bytes(PEM).decode()

    def issue(self, *names: str, days: int = 10,
              key: ec.EllipticCurvePrivateKey | None = None) -> Issued:
        """A certificate for `names`, for a new key unless `key` is given."""
        key, now = key or new_key(), datetime.now(UTC)
        leaf = (
            x509.CertificateBuilder().subject_name(_name(names[0]))
            .issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        return Issued(leaf, leaf.public_bytes(PEM).decode() + self.pem, key)
