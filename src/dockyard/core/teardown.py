"""Taking an app service off every server that runs it: its site first (no more traffic),
then its containers (stopped, then removed), every image of its repository, and the
certificates of its names. The servers are those it is placed on, and any other server of
the workspace whose agent reports containers of it (a deployment that failed half-way)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import NodeAgentClient, unless_gone
from dockyard.core.deploy_targets import hosts_of
from dockyard.core.domain_nodes import servers_running
from dockyard.core.platform import Platform
from dockyard.core.stateful_node import on_server
from dockyard.deploy import plan
from dockyard.deploy.run import Connect
from dockyard.kernel.errors import Conflict, ServerFailed
from dockyard.models.enums import ACTIVE_STATUSES, ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Deployment, Project, Server, Service, Workspace

log = logging.getLogger("dockyard.teardown")
STOP_SECONDS = 10


@dataclass(frozen=True)
class Target:
    """What to take away, and where to look for it."""

    what: str  # project/service, for messages
    site: str
    repository: str
    hostnames: tuple[str, ...]
    placed: tuple[ServerPublic, ...]
    others: tuple[ServerPublic, ...]
    cache_seconds: int  # dangling images older than this go too (settings.build_cache_days)


@dataclass(frozen=True)
class Removed:
    """What one server no longer has; `error` when its agent could not be reached."""

    server: str
    site: bool = False
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def anything(self) -> bool:
        return bool(self.site or self.containers or self.images or self.certificates)


async def target_of(p: Platform, s: AsyncSession, service: Service) -> Target:
    """Read inside a transaction; refuses (409) while the service is being deployed."""
    if await s.scalar(select(Deployment.id).where(
            Deployment.service_id == service.id, Deployment.status.in_(ACTIVE_STATUSES))):
        raise Conflict(f"service {service.name} is being deployed; wait for it to finish, "
                       "then take it down")
    project = (await s.get_one(Project, service.project_id)).name
    workspace = (await s.get_one(Workspace, service.workspace_id)).name
    placed = await servers_running(s, service.id)
    others = await s.scalars(select(Server).where(
        Server.workspace_id == service.workspace_id, Server.id.not_in([x.id for x in placed]),
        Server.status != ServerStatus.DECOMMISSIONED).order_by(Server.name))
    return Target(f"{project}/{service.name}", plan.site_name(project, service.name),
                  plan.image_base(p.settings.registry, workspace, project, service.name),
                  tuple(await hosts_of(p, s, service, project)), tuple(placed),
                  tuple(ServerPublic.model_validate(x) for x in others),
                  p.settings.build_cache_seconds)


async def take_down(connect: Connect, target: Target) -> list[Removed]:
    """Every server's removal, all at once: the placed servers always, the others when
    something of the service was there (or their agent could not be asked)."""
    async def one(server: ServerPublic) -> Removed:
        try:
            async with on_server(connect, server) as client:
                return await _off(client, server.name, target)
        except ServerFailed as exc:
            log.warning("taking %s off %s failed: %s", target.what, server.name, exc.message)
            return Removed(server.name, error=exc.message)

    placed = await asyncio.gather(*(one(x) for x in target.placed))
    others = await asyncio.gather(*(one(x) for x in target.others))
    return [*placed, *(x for x in others if x.anything or x.error)]


async def _off(client: NodeAgentClient, server: str, target: Target) -> Removed:
    site = any(x.service == target.site for x in await client.sites())
    if site:
        await unless_gone(client.remove_site(target.site))
    containers = [c.name for c in await client.containers(target.site)]
    for name in containers:
        await unless_gone(client.stop_container(name, STOP_SECONDS))
        await unless_gone(client.remove_container(name))
    pruned = await client.prune(1, target.repository, retain=[],
                                dangling_max_age_seconds=target.cache_seconds)
    certificates = [c.hostname for c in await client.certificates()
                    if c.hostname in target.hostnames]
    for hostname in certificates:
        await unless_gone(client.remove_certificate(hostname))
    return Removed(server, site, containers, pruned.removed, certificates)


def require_placed_done(removed: list[Removed], target: Target) -> None:
    """A service is only forgotten once every server it is placed on let it go (else its
    containers would run on with nothing to remove them)."""
    placed = {x.name for x in target.placed}
    failed = [x.error for x in removed if x.error and x.server in placed]
    if failed:
        raise ServerFailed(f"{target.what} could not be taken off every server, so it is "
                           f"kept: {'; '.join(failed)}. Try again once the server answers "
                           "(or remove the server with `dockyard servers remove`)")
