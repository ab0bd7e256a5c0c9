"""Workspace-scoped lookups by name. Another workspace's object is simply not found."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor
from dockyard.kernel.errors import Conflict, NotFound
from dockyard.models.schemas import DownCopy, ServerPublic
from dockyard.models.tables import Domain, Placement, Project, Server, Service


async def project_named(s: AsyncSession, actor: Actor, name: str) -> Project:
    query = select(Project).where(Project.workspace_id == actor.workspace_id, Project.name == name)
    project = await s.scalar(query)
    if project is None:
        raise NotFound("project", name)
    return project


_SERVICE_NAMED = select(Service).join(Project, Service.project_id == Project.id).where(
    Project.workspace_id == bindparam("workspace"), Project.name == bindparam("project"),
    Service.name == bindparam("name"))


async def service_named(s: AsyncSession, actor: Actor, project: str, name: str) -> Service:
    """One query; a second only to say which of the two names is unknown."""
    names = {"workspace": actor.workspace_id, "project": project, "name": name}
    service = await s.scalar(_SERVICE_NAMED, names)
    if service is None:
        await project_named(s, actor, project)
        raise NotFound("service", f"{project}/{name}")
    return service


async def server_by_id(s: AsyncSession, actor: Actor, server_id: str) -> Server:
    server = await s.get(Server, server_id)
    if server is None or server.workspace_id != actor.workspace_id:
        raise NotFound("server", server_id)
    return server


async def _down_copies(s: AsyncSession, server_ids: list[str]) -> dict[str, list[DownCopy]]:
    """The copies of services the traffic watch marked down on these servers, by server."""
    query = (select(Placement.server_id, Project.name, Service.name, Placement.traffic_reason,
                    Placement.traffic_changed_at)
             .join(Service, Placement.service_id == Service.id).join(Project)
             .where(Placement.server_id.in_(server_ids), Placement.traffic == "down")
             .order_by(Project.name, Service.name))
    found: dict[str, list[DownCopy]] = {}
    for server_id, project, service, reason, since in await s.execute(query):
        found.setdefault(server_id, []).append(
            DownCopy(service=f"{project}/{service}", reason=reason, since=since))
    return found


async def public_servers(s: AsyncSession, rows: list[Server]) -> list[ServerPublic]:
    """The servers as the API shows them: with their copies of services marked down."""
    down = await _down_copies(s, [row.id for row in rows])
    return [ServerPublic.model_validate(row).model_copy(update={"down_copies": down.get(
        row.id, [])}) for row in rows]


async def refuse_with_domains(s: AsyncSession, service_ids: list[str], what: str) -> None:
    """Services whose domains still route (and may have DNS records) are not deleted: their
    records would stay at the DNS provider with nobody to take them away."""
    names = list(await s.scalars(select(Domain.hostname).where(
        Domain.service_id.in_(service_ids)).order_by(Domain.hostname)))
    if names:
        raise Conflict(f"{what} still has domains ({', '.join(names)}): remove them first "
                       f"(`dockyard domains remove {names[0]}`), which takes their DNS "
                       "records and certificates away")
