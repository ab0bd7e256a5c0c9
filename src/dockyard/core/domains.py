"""Domains: a hostname routed to a service on every server that runs it, with HTTPS (ACME or
a Cloudflare origin certificate) and, with a Cloudflare credential, its DNS records.

Adding one records it, gives the name to the service's site on each server (the edge routes
it at once: no nginx reload), writes its DNS records, then obtains and installs its
certificate. The reconciler keeps names and certificates on servers that were away."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import certify, dns, domain_nodes
from dockyard.core.authz import Actor, Permission
from dockyard.core.deploy_targets import hosts_of
from dockyard.core.lookup import project_named, service_named
from dockyard.core.platform import Platform
from dockyard.deploy.plan import site_name
from dockyard.deploy.run import Connect
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, InvalidInput, NotFound
from dockyard.models.domain_schemas import DomainCreate, DomainPublic, TlsMode
from dockyard.models.enums import ServiceKind
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Domain, Project, ProviderCredential, Service


async def add_domain(p: Platform, connect: Connect, actor: Actor, project: str, service: str,
                     body: DomainCreate) -> DomainPublic:
    async def tx(s: AsyncSession) -> str:
        actor.require(Permission.WRITE)
        target = await service_named(s, actor, project, service)
        await _check_new(p, s, actor, target, body)
        row = Domain(workspace_id=actor.workspace_id, service_id=target.id,
                     hostname=body.hostname, tls=body.tls.value,
                     acme_directory=body.acme_directory or "",
                     redirect_https=body.redirect_https, hsts=body.hsts,
                     dns_credential=body.dns_credential or "", dns_proxied=body.dns_proxied,
                     certificate_status="none" if body.tls is TlsMode.NONE else "pending")
        s.add(row)
        await s.flush()
        return row.id

    try:
        domain_id = await p.db.write(tx, info=actor.audit_info)
    except IntegrityError as exc:
        raise Conflict(f"{body.hostname} is already routed to a service") from exc
    await _settle(p, connect, domain_id)
    return await get_domain(p, actor, body.hostname)


async def _check_new(p: Platform, s: AsyncSession, actor: Actor, service: Service,
                     body: DomainCreate) -> None:
    if service.kind is not ServiceKind.APP:
        raise InvalidInput(f"{service.name} is a {service.kind.value} service: only app "
                           "services serve HTTP, so only they take domains")
    apps = p.settings.apps_domain
    if body.hostname == apps or body.hostname.endswith(f".{apps}"):
        raise InvalidInput(f"{body.hostname} is under {apps}, where Dockyard names every "
                           "service itself (SERVICE.PROJECT." + apps + "); use your own domain")
    if await s.scalar(select(Domain.id).where(Domain.hostname == body.hostname)):
        raise Conflict(f"{body.hostname} is already routed to a service; remove it there "
                       "first (`dockyard domains remove`)")
    if body.dns_credential:
        await _cloudflare_credential(s, actor, body.dns_credential)


async def _cloudflare_credential(s: AsyncSession, actor: Actor, name: str) -> None:
    found = await s.scalar(select(ProviderCredential).where(
        ProviderCredential.workspace_id == actor.workspace_id, ProviderCredential.name == name))
    if found is None:
        raise NotFound("credential", name)
    if found.provider != "cloudflare":
        raise InvalidInput(f"credential {name} is a {found.provider} token; DNS and origin "
                           "certificates need a cloudflare one")


async def _settle(p: Platform, connect: Connect, domain_id: str) -> None:
    """Names on the servers, DNS, then the certificate (ACME needs the name to resolve)."""
    await route(p, connect, domain_id)
    await dns.sync_domain_dns(p, domain_id, dns.default_dns_for(p.settings))
    await certify.certify(p, connect, domain_id)


async def route(p: Platform, connect: Connect, domain_id: str) -> domain_nodes.Outcome:
    """Give the service's site on each of its servers every name it has now."""
    async def tx(s: AsyncSession) -> tuple[str, list[str], list[ServerPublic]]:
        row = await s.get_one(Domain, domain_id)
        return await _names_of(p, s, row.service_id)

    site, names, servers = await p.db.read(tx)
    return await domain_nodes.on_every(connect, servers, domain_nodes.rename_site(site, names))


async def _names_of(p: Platform, s: AsyncSession, service_id: str
                    ) -> tuple[str, list[str], list[ServerPublic]]:
    service = await s.get_one(Service, service_id)
    project = (await s.get_one(Project, service.project_id)).name
    return (site_name(project, service.name), await hosts_of(p, s, service, project),
            await domain_nodes.servers_running(s, service.id))


async def list_domains(p: Platform, actor: Actor, project: str | None = None,
                       service: str | None = None) -> list[DomainPublic]:
    async def tx(s: AsyncSession) -> list[DomainPublic]:
        actor.require(Permission.READ)
        query = (select(Domain, Service.name, Project.name)
                 .join(Service, Domain.service_id == Service.id).join(Project)
                 .where(Domain.workspace_id == actor.workspace_id).order_by(Domain.hostname))
        if project is not None:
            query = query.where(Project.id == (await project_named(s, actor, project)).id)
        if service is not None:
            query = query.where(Service.name == service)
        return [_public(row, svc, proj) for row, svc, proj in await s.execute(query)]

    return await p.db.read(tx)


async def get_domain(p: Platform, actor: Actor, hostname: str) -> DomainPublic:
    async def tx(s: AsyncSession) -> DomainPublic:
        actor.require(Permission.READ)
        row = await _named(s, actor, hostname)
        service = await s.get_one(Service, row.service_id)
        project = await s.get_one(Project, service.project_id)
        return _public(row, service.name, project.name)

    return await p.db.read(tx)


async def _named(s: AsyncSession, actor: Actor, hostname: str) -> Domain:
    row = await s.scalar(select(Domain).where(Domain.hostname == hostname,
                                              Domain.workspace_id == actor.workspace_id))
    if row is None:
        raise NotFound("domain", hostname)
    return row


def _public(row: Domain, service: str, project: str) -> DomainPublic:
    return DomainPublic(
        hostname=row.hostname, project=project, service=service, tls=TlsMode(row.tls),
        redirect_https=row.redirect_https, hsts=row.hsts,
        certificate_status=row.certificate_status,
        certificate_expires_at=row.certificate_expires_at,
        certificate_renewed_at=row.certificate_renewed_at,
        certificate_error=row.certificate_error, dns_credential=row.dns_credential,
        dns_proxied=row.dns_proxied, dns_status=row.dns_status, dns_error=row.dns_error,
        dns_addresses=list(row.dns_addresses), created_at=row.created_at)


async def renew_domain(p: Platform, connect: Connect, actor: Actor, hostname: str
                       ) -> DomainPublic:
    """Obtain a new certificate now (and install it everywhere)."""
    async def tx(s: AsyncSession) -> str:
        row = await _named(s, actor, hostname)
        actor.require(Permission.WRITE)
        if row.tls == TlsMode.NONE.value:
            raise InvalidInput(f"{hostname} has no certificate to renew (tls none)")
        return row.id

    await certify.certify(p, connect, await p.db.read(tx))
    return await get_domain(p, actor, hostname)


async def remove_domain(p: Platform, connect: Connect, actor: Actor, hostname: str) -> None:
    """Take the domain's DNS records off (a refusal keeps the domain, to try again), forget
    it, then take its name and certificate off its servers."""
    async def check(s: AsyncSession) -> tuple[str, str]:
        row = await _named(s, actor, hostname)
        actor.require(Permission.WRITE)
        return row.dns_credential, row.workspace_id

    credential, workspace_id = await p.db.read(check)
    await dns.remove_domain_dns(p, hostname, credential, workspace_id,
                                dns.default_dns_for(p.settings))

    async def tx(s: AsyncSession) -> tuple[str, list[str], list[ServerPublic]]:
        row = await _named(s, actor, hostname)
        await delete_recorded(s, row)
        await s.flush()
        return await _names_of(p, s, row.service_id)

    site, names, servers = await p.db.write(tx, info=actor.audit_info)
    await domain_nodes.on_every(connect, servers, domain_nodes.rename_site(site, names))
    await domain_nodes.on_every(connect, servers, domain_nodes.remove_certificate(hostname))
