"""Cloudflare through its official SDK: the A/AAAA records of a domain (only those Dockyard
made, marked in their comment; a record the user made is never touched) and Origin CA
certificates. Pure of the database; SDK objects never leave this module."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, get_args

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dockyard.kernel.errors import Conflict, DockyardError, InvalidInput
from dockyard.models.fields import DNS_LABEL

if TYPE_CHECKING:  # the SDK is imported where it is called: the API rarely needs it
    import cloudflare

Ip = IPv4Address | IPv6Address
MARKER = "dockyard-managed"  # the comment on every record Dockyard creates
ValidityDays = Literal[7, 30, 90, 365, 730, 1095, 5475]
ORIGIN_VALIDITY_DAYS: tuple[ValidityDays, ...] = get_args(ValidityDays)
HOSTNAME = rf"(?:\*\.)?{DNS_LABEL}(?:\.{DNS_LABEL})+"
IDENTICAL_RECORD = 81058  # Cloudflare's error code: "An identical record already exists."
USER_KINDS = ("A", "AAAA", "CNAME")  # a record of these beside ours would answer too
CREDENTIAL_HELP = ("store a Cloudflare API token with the Zone:Read and DNS:Edit "
                   "permissions (and SSL and Certificates:Edit for origin certificates) with "
                   "`dockyard credentials set NAME --provider cloudflare`")


class CloudflareFailed(DockyardError):
    """Cloudflare refused or did not answer; the message says what it said."""

    status_code = 502


class DnsConflict(Conflict):
    """A record of the domain's name that Dockyard did not make answers in DNS already."""


@dataclass(frozen=True)
class Zone:
    id: str
    name: str


@dataclass(frozen=True)
class DnsChange:
    """The addresses whose records were created, updated (proxied flag) or deleted."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OriginCertificate:
    certificate_pem: str
    not_after: datetime
    id: str


@dataclass(frozen=True)
class _Record:
    id: str
    type: str
    name: str
    content: str
    proxied: bool
    comment: str

    @property
    def ours(self) -> bool:
        return self.comment == MARKER and self.type in ("A", "AAAA")


def _errors(exc: cloudflare.APIStatusError) -> list[dict[str, Any]]:
    """The `errors` of Cloudflare's answer (a list of {code, message})."""
    errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _reasons(exc: cloudflare.APIStatusError) -> str:
    said = [f"{e.get('message', '')} (code {e.get('code', '?')})" for e in _errors(exc)]
    return "; ".join(said) or exc.message


def _has_code(exc: cloudflare.APIStatusError, code: int) -> bool:
    return any(e.get("code") == code for e in _errors(exc))


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The SDK's errors as ours, each saying what Dockyard was doing and what to do."""
    import cloudflare

    try:
        yield
    except (cloudflare.AuthenticationError, cloudflare.PermissionDeniedError) as exc:
        raise CloudflareFailed(f"Cloudflare refused the token while {action} "
                               f"({_reasons(exc)}); {CREDENTIAL_HELP}") from exc
    except cloudflare.APIStatusError as exc:
        raise CloudflareFailed(f"Cloudflare answered HTTP {exc.status_code} while {action}: "
                               f"{_reasons(exc)}") from exc
    except cloudflare.APIConnectionError as exc:
        raise CloudflareFailed(f"Cloudflare's API did not answer while {action}: "
                               f"{exc.message}") from exc
    except cloudflare.APIError as exc:  # an answer the SDK could not read
        raise CloudflareFailed(f"Cloudflare's answer made no sense while {action}: "
                               f"{exc.message}") from exc


def checked_hostname(hostname: str) -> str:
    if re.fullmatch(HOSTNAME, hostname) is None:
        raise InvalidInput(f"{hostname!r} is not a lowercase DNS name like 'shop.example.com'")
    return hostname


def _addresses(addresses: Sequence[str]) -> dict[str, Ip]:
    try:
        parsed = [ip_address(a) for a in addresses]
    except ValueError as exc:
        raise InvalidInput(f"a DNS record needs an IP address: {exc}") from exc
    return {str(a): a for a in parsed}


class CloudflareDns:
    """One token's view of Cloudflare. Use as `async with CloudflareDns(...) as dns:`."""

    def __init__(self, token: str, base_url: str, *, max_retries: int = 2,
                 timeout: float = 30, http_client: httpx.AsyncClient | None = None) -> None:
        import cloudflare

        self._client = cloudflare.AsyncCloudflare(
            api_token=token, base_url=base_url, max_retries=max_retries, timeout=timeout,
            http_client=http_client)

    async def __aenter__(self) -> CloudflareDns:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._client.close()

    async def zones(self, name: str | None = None) -> list[Zone]:
        """The zones the token sees (named `name`, when given)."""
        import cloudflare

        with _translated("listing the zones the token can see"):
            pages = self._client.zones.list(per_page=50, name=cloudflare.omit if name is None
                                            else name)
            return [Zone(z.id, z.name) async for z in pages]

    async def zone_for(self, hostname: str) -> Zone:
        """The zone holding `hostname`: the longest zone name it equals or ends with (asked
        for by name, longest first, so an account's other zones are never listed)."""
        labels = hostname.split(".")
        for start in range(len(labels) - 1):
            found = await self.zones(".".join(labels[start:]))
            if found:
                return found[0]
        seen = ", ".join(sorted(z.name for z in await self.zones())) or "none"
        raise InvalidInput(f"no Cloudflare zone this token can see holds {hostname} "
                           f"(zones it sees: {seen}); add the zone to the token, or use a "
                           "name inside one of those zones")

    async def sync_records(self, hostname: str, addresses: Sequence[str], proxied: bool
                           ) -> DnsChange:
        """One A (IPv4) or AAAA (IPv6) record per address, all of Dockyard's: new ones are
        created before the ones no longer wanted are deleted, so the name keeps answering."""
        wanted = _addresses(addresses)
        zone = await self.zone_for(checked_hostname(hostname))
        plan = _plan(await self._records(zone, hostname), wanted, proxied)
        created = [await self._create(zone, hostname, wanted[a], proxied) for a in plan.create]
        updated = [await self._reproxy(zone, hostname, r, wanted[r.content], proxied)
                   for r in plan.reproxy]
        deleted = [await self._delete(zone, record) for record in plan.delete]
        return DnsChange(created, updated, deleted)

    async def remove_records(self, hostname: str) -> DnsChange:
        """Delete Dockyard's records of `hostname` (and only those)."""
        zone = await self.zone_for(checked_hostname(hostname))
        records = await self._records(zone, hostname)
        return DnsChange(deleted=[await self._delete(zone, r) for r in records if r.ours])

    async def origin_certificate(self, hostnames: Sequence[str], csr_pem: str, days: int
                                 ) -> OriginCertificate:
        """A certificate of Cloudflare's Origin CA for `hostnames`, for the CSR's key."""
        validity = next((d for d in ORIGIN_VALIDITY_DAYS if d == days), None)
        if validity is None:
            raise InvalidInput(f"an origin certificate lasts one of {ORIGIN_VALIDITY_DAYS} "
                               f"days, not {days}")
        request_type = _request_type(csr_pem)
        with _translated(f"asking the Origin CA for {', '.join(hostnames)}"):
            made = await self._client.origin_ca_certificates.create(
                csr=csr_pem, hostnames=[checked_hostname(h) for h in hostnames],
                request_type=request_type, requested_validity=validity)
        if made is None or not made.certificate or not made.id:
            raise CloudflareFailed("Cloudflare's Origin CA answered without a certificate")
        try:
            leaf = x509.load_pem_x509_certificate(made.certificate.encode())
        except ValueError as exc:
            raise CloudflareFailed(f"Cloudflare's Origin CA answered an unreadable "
                                   f"certificate: {exc}") from exc
        return OriginCertificate(made.certificate, leaf.not_valid_after_utc, made.id)

    async def _records(self, zone: Zone, hostname: str) -> list[_Record]:
        with _translated(f"listing the DNS records of {hostname}"):
            pages = self._client.dns.records.list(
                zone_id=zone.id, per_page=100, extra_query={"name": hostname})
            found = [_record(r.to_dict()) async for r in pages if r.name == hostname]
        return found

    async def _create(self, zone: Zone, hostname: str, ip: Ip, proxied: bool) -> str:
        import cloudflare

        with _translated(f"creating the {_kind(ip)} record {hostname} -> {ip}"):
            try:
                await self._client.dns.records.create(
                    zone_id=zone.id, type=_kind(ip), name=hostname, content=str(ip),
                    proxied=proxied, ttl=1, comment=MARKER)
            except cloudflare.BadRequestError as exc:  # another sync may have just made it
                if not (_has_code(exc, IDENTICAL_RECORD)
                        and await self._has_ours(zone, hostname, str(ip))):
                    raise
        return str(ip)

    async def _has_ours(self, zone: Zone, hostname: str, content: str) -> bool:
        return any(r.ours and r.content == content for r in await self._records(zone, hostname))

    async def _reproxy(self, zone: Zone, hostname: str, record: _Record, ip: Ip,
                       proxied: bool) -> str:
        with _translated(f"updating the {record.type} record {hostname} -> {ip}"):
            await self._client.dns.records.update(
                record.id, zone_id=zone.id, type=_kind(ip), name=hostname, content=str(ip),
                proxied=proxied, ttl=1, comment=MARKER)
        return str(ip)

    async def _delete(self, zone: Zone, record: _Record) -> str:
        # A record gone already (another sync, the user) is what was wanted. The published
        # API document requires a JSON body on this DELETE.
        import cloudflare

        with (_translated(f"deleting the {record.type} record of {record.content}"),
              suppress(cloudflare.NotFoundError)):
            await self._client.dns.records.delete(record.id, zone_id=zone.id, extra_body={})
        return record.content


def _kind(ip: Ip) -> Literal["A", "AAAA"]:
    return "A" if ip.version == 4 else "AAAA"


def _record(data: dict[str, Any]) -> _Record:
    return _Record(str(data["id"]), str(data["type"]), str(data["name"]),
                   str(data.get("content", "")),
                   bool(data.get("proxied", False)), str(data.get("comment") or ""))


@dataclass(frozen=True)
class _Plan:
    create: list[str]  # addresses
    reproxy: list[_Record]
    delete: list[_Record]


def _plan(records: list[_Record], wanted: dict[str, Ip], proxied: bool) -> _Plan:
    """What to do to the name's records (refused when the user has records of it)."""
    _refuse_users_records(records)
    ours = {r.content: r for r in records if r.ours}  # one per address; the others go
    return _Plan(create=[a for a in wanted if a not in ours],
                 reproxy=[r for a, r in ours.items() if a in wanted and r.proxied != proxied],
                 delete=[r for r in records if r.ours and (r.content not in wanted
                                                           or ours[r.content] is not r)])


def _refuse_users_records(records: list[_Record]) -> None:
    theirs = [r for r in records if not r.ours and r.type in USER_KINDS]
    if theirs:
        found = ", ".join(f"{r.type} {r.content}" for r in theirs)
        raise DnsConflict(
            f"{theirs[0].name} already has DNS records Dockyard did not create ({found}); "
            "delete them in Cloudflare to let Dockyard manage this name, or add the "
            "domain without a DNS credential and keep managing its records yourself")


def _request_type(csr_pem: str) -> Literal["origin-rsa", "origin-ecc"]:
    try:
        key = x509.load_pem_x509_csr(csr_pem.encode()).public_key()
    except ValueError as exc:
        raise InvalidInput(f"not a PEM certificate signing request: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey):
        return "origin-rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "origin-ecc"
    raise InvalidInput("an origin certificate needs an RSA or ECDSA key in the CSR")
