"""The fake Cloudflare's Origin CA: a CA of its own that signs CSRs as Cloudflare's would
(its subject, the requested hostnames as the names, the requested validity)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITIES = (7, 30, 90, 365, 730, 1095, 5475)
KEY_TYPES = {"origin-rsa": rsa.RSAPublicKey, "origin-ecc": ec.EllipticCurvePublicKey}
ORIGIN_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CloudFlare, Inc."),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CloudFlare Origin CA"),
    x509.NameAttribute(NameOID.COMMON_NAME, "CloudFlare Origin Certificate")])


class OriginCaRefused(Exception):
    """A CSR or request the Origin CA will not sign (the message says why)."""


@dataclass
class OriginCa:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls) -> OriginCa:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake Cloudflare Origin CA")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=20 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
        return cls(key, certificate)

    @classmethod
    def load(cls, data: dict[str, str]) -> OriginCa:
        key = serialization.load_pem_private_key(data["key_pem"].encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(key, x509.load_pem_x509_certificate(data["certificate_pem"].encode()))

    def dump(self) -> dict[str, str]:
        key_pem = self.key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        return {"key_pem": key_pem.decode(), "certificate_pem": self.certificate_pem}

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str, hostnames: list[str], request_type: str, days: int
             ) -> dict[str, Any]:
        """Sign like the Origin CA, or refuse with its reason; the API's certificate object."""
        csr = _csr(csr_pem, request_type)
        if not hostnames or not all(isinstance(h, str) and h for h in hostnames):
            raise OriginCaRefused("hostnames: give at least one hostname")
        if days not in VALIDITIES:
            raise OriginCaRefused(f"requested_validity must be one of {VALIDITIES}")
        now = datetime.now(UTC).replace(microsecond=0)
        certificate = (
            x509.CertificateBuilder().subject_name(ORIGIN_SUBJECT)
            .issuer_name(self.certificate.subject).public_key(csr.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(h) for h in hostnames]), critical=False)
            .sign(self.key, hashes.SHA256()))
        return {"id": uuid.uuid4().hex, "csr": csr_pem, "hostnames": hostnames,
                "request_type": request_type, "requested_validity": days,
                "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
                "expires_on": (now + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _csr(csr_pem: str, request_type: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise OriginCaRefused(f"Failed to parse the CSR: {exc}") from exc
    if not csr.is_signature_valid:
        raise OriginCaRefused("The CSR's signature does not verify")
    if request_type not in KEY_TYPES:
        raise OriginCaRefused(f"request_type {request_type} is not offered here")
    if not isinstance(csr.public_key(), KEY_TYPES[request_type]):
        raise OriginCaRefused(f"the CSR's key does not fit request_type {request_type}")
    return csr
