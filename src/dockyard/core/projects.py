"""Projects: named groups of services inside a workspace."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import project_named, refuse_with_domains
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict
from dockyard.models.schemas import ProjectCreate, ProjectPublic, ProjectUpdate
from dockyard.models.tables import Project, Service


async def _ensure_free(s: AsyncSession, workspace_id: str, name: str) -> None:
    query = select(Project.id).where(Project.workspace_id == workspace_id, Project.name == name)
    if await s.scalar(query):
        raise Conflict(f"a project named {name!r} already exists in this workspace")


async def list_projects(p: Platform, actor: Actor) -> list[ProjectPublic]:
    async def tx(s: AsyncSession) -> list[ProjectPublic]:
        actor.require(Permission.READ)
        query = select(Project).where(Project.workspace_id == actor.workspace_id)
        rows = await s.scalars(query.order_by(Project.name))
        return [ProjectPublic.model_validate(r) for r in rows]

    return await p.db.read(tx)


async def get_project(p: Platform, actor: Actor, name: str) -> ProjectPublic:
    async def tx(s: AsyncSession) -> ProjectPublic:
        actor.require(Permission.READ)
        return ProjectPublic.model_validate(await project_named(s, actor, name))

    return await p.db.read(tx)


async def create_project(p: Platform, actor: Actor, body: ProjectCreate) -> ProjectPublic:
    async def tx(s: AsyncSession) -> ProjectPublic:
        actor.require(Permission.WRITE)
        await _ensure_free(s, actor.workspace_id, body.name)
        project = Project(workspace_id=actor.workspace_id, **body.model_dump())
        s.add(project)
        await s.flush()
        return ProjectPublic.model_validate(project)

    return await p.db.write(tx, info=actor.audit_info)


async def update_project(
    p: Platform, actor: Actor, name: str, body: ProjectUpdate
) -> ProjectPublic:
    async def tx(s: AsyncSession) -> ProjectPublic:
        project = await project_named(s, actor, name)
        actor.require(Permission.WRITE)
        if body.name is not None and body.name != project.name:
            await _ensure_free(s, actor.workspace_id, body.name)
        for field, value in body.model_dump(exclude_none=True).items():
            setattr(project, field, value)
        await s.flush()
        return ProjectPublic.model_validate(project)

    return await p.db.write(tx, info=actor.audit_info)


async def delete_project(p: Platform, actor: Actor, name: str) -> None:
    """Delete a project with its services and their variables."""

    async def tx(s: AsyncSession) -> None:
        project = await project_named(s, actor, name)
        actor.require(Permission.DELETE)
        services = await s.scalars(select(Service.id).where(Service.project_id == project.id))
        await refuse_with_domains(s, list(services), f"project {name}")
        await delete_recorded(s, project)

    await p.db.write(tx, info=actor.audit_info)
