"""Workspace-scoped lookups by name. Another workspace's object is simply not found."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor
from dockyard.kernel.errors import NotFound
from dockyard.models.tables import Project, Server, Service


async def project_named(s: AsyncSession, actor: Actor, name: str) -> Project:
    query = select(Project).where(Project.workspace_id == actor.workspace_id, Project.name == name)
    project = await s.scalar(query)
    if project is None:
        raise NotFound("project", name)
    return project


async def service_named(s: AsyncSession, actor: Actor, project: str, name: str) -> Service:
    parent = await project_named(s, actor, project)
    query = select(Service).where(Service.project_id == parent.id, Service.name == name)
    service = await s.scalar(query)
    if service is None:
        raise NotFound("service", f"{project}/{name}")
    return service


async def server_by_id(s: AsyncSession, actor: Actor, server_id: str) -> Server:
    server = await s.get(Server, server_id)
    if server is None or server.workspace_id != actor.workspace_id:
        raise NotFound("server", server_id)
    return server
