"""DNS at Cloudflare follows traffic: a domain with a DNS credential has one A/AAAA record per
server that runs its service, takes traffic (placement up) and is not drained or
decommissioned. The database is read, then Cloudflare called, then the outcome written:
no network call inside a transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.credentials import provider_token
from dockyard.core.platform import Platform
from dockyard.kernel.errors import DockyardError, InvalidInput, NotFound
from dockyard.kernel.settings import Settings
from dockyard.models.enums import ServerStatus
from dockyard.models.tables import Domain, Placement, ProviderCredential, Server
from dockyard.providers.cloudflare import CloudflareDns, DnsChange

log = logging.getLogger("dockyard.dns")
DnsFor = Callable[[str], CloudflareDns]  # a token -> a client (the seam tests replace)
MAX_ERROR = 2000


def default_dns_for(settings: Settings) -> DnsFor:
    return lambda token: CloudflareDns(token, settings.cloudflare_api_url)


@dataclass(frozen=True)
class DnsTarget:
    """What one domain's records should be, read from the database."""

    domain_id: str
    workspace_id: str
    hostname: str
    credential: str
    proxied: bool
    addresses: list[str]


@dataclass(frozen=True)
class DnsOutcome:
    """What a sync did: `synced` with the change, or `failed` with why (also on the row)."""

    hostname: str
    status: Literal["none", "synced", "failed"]
    addresses: list[str]
    error: str = ""
    change: DnsChange = field(default_factory=DnsChange)


async def _addresses_by_service(s: AsyncSession, service_ids: set[str]) -> dict[str, list[str]]:
    query = (select(Placement.service_id, Server.ip)
             .join(Server, Server.id == Placement.server_id)
             .where(Placement.service_id.in_(service_ids), Placement.traffic == "up",
                    Server.drained_at.is_(None), Server.ip != "",
                    Server.status != ServerStatus.DECOMMISSIONED))
    found: dict[str, set[str]] = {service_id: set() for service_id in service_ids}
    for service_id, ip in await s.execute(query):
        found[service_id].add(ip)
    return {service_id: sorted(ips) for service_id, ips in found.items()}


async def desired_addresses(s: AsyncSession, domain: Domain) -> list[str]:
    """The IPs of the servers that run the domain's service and take its traffic, sorted."""
    return (await _addresses_by_service(s, {domain.service_id}))[domain.service_id]


def _target(domain: Domain, addresses: list[str]) -> DnsTarget:
    return DnsTarget(domain.id, domain.workspace_id, domain.hostname, domain.dns_credential,
                     domain.dns_proxied, addresses)


async def _cloudflare_token(p: Platform, workspace_id: str, name: str) -> str:
    async def tx(s: AsyncSession) -> str:
        return await s.scalar(select(ProviderCredential.provider).where(
            ProviderCredential.workspace_id == workspace_id,
            ProviderCredential.name == name)) or ""

    provider = await p.db.read(tx)
    if provider not in ("", "cloudflare"):
        raise InvalidInput(f"credential {name} is a {provider} token; DNS needs a cloudflare "
                           "one")
    return await provider_token(p, workspace_id, name)  # NotFound when it is gone


async def _apply(p: Platform, target: DnsTarget, dns_for: DnsFor) -> DnsOutcome:
    try:
        token = await _cloudflare_token(p, target.workspace_id, target.credential)
        async with dns_for(token) as dns:
            change = await dns.sync_records(target.hostname, target.addresses, target.proxied)
    except DockyardError as exc:
        log.warning("DNS of %s failed: %s", target.hostname, exc.message)
        return DnsOutcome(target.hostname, "failed", target.addresses, exc.message[:MAX_ERROR])
    return DnsOutcome(target.hostname, "synced", target.addresses, change=change)


async def _record(p: Platform, domain_id: str, outcome: DnsOutcome) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await s.get(Domain, domain_id)
        if row is None:  # removed meanwhile: its removal cleans its records up
            return
        row.dns_status, row.dns_error = outcome.status, outcome.error
        if outcome.status == "synced":
            row.dns_addresses = outcome.addresses

    await p.db.write(tx)


async def sync_target(p: Platform, target: DnsTarget, dns_for: DnsFor) -> DnsOutcome:
    outcome = await _apply(p, target, dns_for)
    await _record(p, target.domain_id, outcome)
    return outcome


async def sync_domain_dns(p: Platform, domain_id: str, dns_for: DnsFor) -> DnsOutcome:
    """Make the domain's records list its servers now; the outcome is also kept on its row
    (dns_status, dns_addresses, dns_error). Never raises for Cloudflare's refusals."""
    async def tx(s: AsyncSession) -> DnsTarget:
        row = await s.get(Domain, domain_id)
        if row is None:
            raise NotFound("domain", domain_id)
        return _target(row, await desired_addresses(s, row))

    target = await p.db.read(tx)
    if not target.credential:
        return DnsOutcome(target.hostname, "none", [])
    return await sync_target(p, target, dns_for)


async def remove_domain_dns(p: Platform, hostname: str, credential_name: str,
                            workspace_id: str, dns_for: DnsFor) -> DnsChange:
    """Delete Dockyard's records of a removed domain (raises what Cloudflare refused)."""
    if not credential_name:
        return DnsChange()
    token = await _cloudflare_token(p, workspace_id, credential_name)
    async with dns_for(token) as dns:
        return await dns.remove_records(hostname)


async def stale_targets(p: Platform) -> list[DnsTarget]:
    """Domains with a DNS credential whose records differ from what they should be, or whose
    last sync failed."""
    async def tx(s: AsyncSession) -> list[DnsTarget]:
        domains = list(await s.scalars(select(Domain).where(Domain.dns_credential != "")))
        wanted = await _addresses_by_service(s, {d.service_id for d in domains})
        return [_target(d, wanted[d.service_id]) for d in domains
                if d.dns_status == "failed" or sorted(d.dns_addresses) != wanted[d.service_id]]

    return await p.db.read(tx)


async def sync_all_dns(p: Platform, dns_for: DnsFor) -> int:
    """Sync every stale domain (see `stale_targets`); how many were tried."""
    targets = await stale_targets(p)
    for target in targets:
        await sync_target(p, target, dns_for)
    return len(targets)
