"""Certificates the edge serves and the ACME challenges it answers, as files.

A certificate is checked (it parses, its key matches, it covers the name) and written again
from what was parsed, so only well-formed PEM reaches a file. It is kept in the agent's
certs directory (its state: survives restarts and reboots) and published to the edge's
`tls/<name>/` under /run, which nginx's workers read at every handshake: the key file is
0640 root:<workers' group> there (0600 when the agent is not root: the workers are its own
user). One directory per name, `certificate.pem` (chain, then key) with the files
`redirect` and `hsts` beside it when those are wanted (see `dockyard.agent.nginx`).
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.agent.models import CertificateInstall, InstalledCertificate
from dockyard.agent.nginx import CERTIFICATE_FILE, HSTS_FILE, REDIRECT_FILE
from dockyard.kernel.errors import InvalidInput

if TYPE_CHECKING:  # cryptography (6 MB) only once the agent handles a certificate
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

log = logging.getLogger("dockyard.agent")
WORKER_GROUPS = ("nogroup", "nobody")  # nginx's default group for its `nobody` workers


@dataclass(frozen=True)
class CheckedCertificate:
    """What is written: the chain (leaf first) then the key, re-encoded; the flag files."""

    pem: bytes
    redirect_https: bool
    hsts: bool


def _chain(text: str) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        chain = x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise InvalidInput(f"the certificate PEM does not parse: {exc}") from exc
    return chain


def _key(text: str) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"the key PEM does not parse (an unencrypted PEM private key is "
                           f"needed): {exc}") from exc


def _names(leaf: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        extension = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = extension.value.get_values_for_type(x509.DNSName)
    return [name.lower() for name in names]


def _public(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def covers(pattern: str, hostname: str) -> bool:
    """Whether a certificate name covers `hostname`: equal, or a wildcard standing for
    exactly its first label."""
    if pattern.startswith("*."):
        first, _, rest = hostname.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == hostname


def checked(hostname: str, install: CertificateInstall) -> CheckedCertificate:
    """The certificate, refused with a reason when it does not parse, its key does not
    match, or it does not cover `hostname`."""
    from cryptography.hazmat.primitives import serialization

    chain, key = _chain(install.certificate_pem), _key(install.key_pem)
    leaf = chain[0]
    if _public(leaf.public_key()) != _public(key.public_key()):
        raise InvalidInput("the key does not match the certificate (the first certificate "
                           "of the PEM must be the one issued for this key)")
    names = _names(leaf)
    if not any(covers(name, hostname) for name in names):
        raise InvalidInput(f"the certificate does not cover {hostname}: it names "
                           f"{', '.join(names) or 'no DNS name'}")
    encoding = serialization.Encoding.PEM
    key_pem = key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pem = b"".join(certificate.public_bytes(encoding) for certificate in chain) + key_pem
    return CheckedCertificate(pem, install.redirect_https, install.hsts)


def describe(hostname: str, pem: bytes, flags: set[str]) -> InstalledCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    leaf = x509.load_pem_x509_certificates(pem)[0]
    return InstalledCertificate(
        hostname=hostname, sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER))
        .hexdigest(), not_after=leaf.not_valid_after_utc.astimezone(UTC),
        redirect_https=REDIRECT_FILE in flags, hsts=HSTS_FILE in flags)


def worker_group() -> int | None:
    """The group nginx's workers run in when the agent (their master) is root; None when it
    is not (the workers are then the agent's own user)."""
    if os.geteuid() != 0:
        return None
    for name in WORKER_GROUPS:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    raise InvalidInput(f"none of the groups {', '.join(WORKER_GROUPS)} exists: nginx's "
                       f"workers could not read the certificates")


def _write(path: Path, content: bytes, group: int | None) -> None:
    """Write `path` whole or not at all (a temporary file renamed over it), synced, readable
    by its owner and `group`."""
    temporary = path.with_name(f".{path.name}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        if group is not None:
            os.fchown(handle.fileno(), 0, group)
            os.fchmod(handle.fileno(), 0o640)
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _directory(path: Path, group: int | None) -> Path:
    """`path`, made if absent: searchable by its owner and `group` only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if group is not None:
        os.chown(path, 0, group)
        path.chmod(0o710)
    return path


class CertificateStore:
    """Certificates kept in `kept` (the agent's state) and published to `live` (the edge's)."""

    def __init__(self, kept: Path, live: Path) -> None:
        self.kept = kept
        self.live = live

    def install(self, hostname: str, certificate: CheckedCertificate) -> None:
        """Kept first, then published."""
        _write_certificate(self.kept, hostname, certificate, None)
        _write_certificate(self.live, hostname, certificate, worker_group())

    def remove(self, hostname: str) -> None:
        """Unpublished first (its redirect before its certificate), then forgotten; one that
        is gone already is no error."""
        for root in (self.live, self.kept):
            directory = root / hostname
            for name in (REDIRECT_FILE, HSTS_FILE, CERTIFICATE_FILE):
                (directory / name).unlink(missing_ok=True)
            shutil.rmtree(directory, ignore_errors=True)

    def installed(self) -> list[InstalledCertificate]:
        found = []
        for directory in sorted(self.kept.glob(f"*/{CERTIFICATE_FILE}")):
            try:
                found.append(_read(directory.parent))
            except (OSError, ValueError, IndexError) as exc:
                log.error("unreadable certificate in %s: %s", directory.parent, exc)
        return found

    def publish_all(self) -> None:
        """Publish every kept certificate again (after a reboot emptied /run; an agent
        upgrade) and unpublish any other: the edge serves exactly what is kept."""
        kept = {path.parent.name for path in self.kept.glob(f"*/{CERTIFICATE_FILE}")}
        for stale in (set(p.name for p in self.live.glob("*")) - kept):
            shutil.rmtree(self.live / stale, ignore_errors=True)
        group = worker_group()
        for hostname in sorted(kept):
            directory = self.kept / hostname
            flags = {path.name for path in directory.iterdir()}
            certificate = CheckedCertificate((directory / CERTIFICATE_FILE).read_bytes(),
                                             REDIRECT_FILE in flags, HSTS_FILE in flags)
            _write_certificate(self.live, hostname, certificate, group)


def _write_certificate(root: Path, hostname: str, certificate: CheckedCertificate,
                       group: int | None) -> None:
    """The certificate first and `redirect` after it, so http never redirects to a name
    whose certificate is not there yet."""
    directory = _directory(_directory(root, group) / hostname, group)
    _write(directory / CERTIFICATE_FILE, certificate.pem, group)
    _flag(directory / REDIRECT_FILE, certificate.redirect_https)
    _flag(directory / HSTS_FILE, certificate.hsts)


def _flag(path: Path, wanted: bool) -> None:
    if wanted:
        path.touch(mode=0o644)
    else:
        path.unlink(missing_ok=True)


def _read(directory: Path) -> InstalledCertificate:
    flags = {path.name for path in directory.iterdir()}
    return describe(directory.name, (directory / CERTIFICATE_FILE).read_bytes(), flags)


class AcmeWebroot:
    """The files the edge serves at /.well-known/acme-challenge/<token> (under /run: a
    challenge lives for minutes; readable by every user, as it is public)."""

    def __init__(self, root: Path) -> None:
        self.challenges = root / ".well-known" / "acme-challenge"

    def put(self, token: str, key_authorization: str) -> None:
        if not key_authorization.startswith(f"{token}."):
            raise InvalidInput("the key authorization must start with the token and '.'")
        self.challenges.mkdir(mode=0o755, parents=True, exist_ok=True)
        for directory in (self.challenges.parent, self.challenges):
            directory.chmod(0o755)
        temporary = self.challenges / f".{hashlib.sha256(token.encode()).hexdigest()}.new"
        temporary.write_text(key_authorization)
        temporary.chmod(0o644)
        os.replace(temporary, self.challenges / token)

    def remove(self, token: str) -> None:
        (self.challenges / token).unlink(missing_ok=True)
