"""Projects: named groups of services inside a workspace."""

from __future__ import annotations

import asyncio

from anyio import to_thread
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import services, teardown
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import project_named, refuse_with_domains
from dockyard.core.platform import Platform
from dockyard.deploy.run import Connect
from dockyard.gitpush import repos
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, NotFound
from dockyard.models.enums import ACTIVE_STATUSES, ServiceKind
from dockyard.models.schemas import ProjectCreate, ProjectPublic, ProjectUpdate
from dockyard.models.tables import Deployment, Project, Service


async def _ensure_free(s: AsyncSession, workspace_id: str, name: str) -> None:
    query = select(Project.id).where(Project.workspace_id == workspace_id, Project.name == name)
    if await s.scalar(query):
        raise Conflict(f"a project named {name!r} already exists in this workspace")


# The reads most requests make: built once, plain columns (no ORM objects to load).
_PUBLIC = select(*(Project.__table__.c[name] for name in ProjectPublic.model_fields))
_IN_WORKSPACE = _PUBLIC.where(Project.workspace_id == bindparam("workspace"))
_LISTING = _IN_WORKSPACE.order_by(Project.name)
_NAMED = _IN_WORKSPACE.where(Project.name == bindparam("name"))


async def list_projects(p: Platform, actor: Actor) -> list[ProjectPublic]:
    actor.require(Permission.READ)
    rows = await p.db.read_rows(_LISTING, {"workspace": actor.workspace_id})
    return [ProjectPublic.model_validate(r) for r in rows]


async def get_project(p: Platform, actor: Actor, name: str) -> ProjectPublic:
    actor.require(Permission.READ)
    rows = await p.db.read_rows(_NAMED, {"workspace": actor.workspace_id, "name": name})
    if not rows:
        raise NotFound("project", name)
    return ProjectPublic.model_validate(rows[0])


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


async def delete_project(p: Platform, connect: Connect, actor: Actor, name: str
                         ) -> list[teardown.Removed]:
    """Every app of the project (its previews too) is taken off every server, as `services
    delete` does, before the project's rows go; while one cannot be, every row is kept."""
    async def check(s: AsyncSession) -> tuple[str, list[tuple[str, teardown.Target]]]:
        project = await project_named(s, actor, name)
        actor.require(Permission.DELETE)
        rows = list(await s.scalars(select(Service).where(Service.project_id == project.id)
                                    .order_by(Service.name)))
        await refuse_with_domains(s, [x.id for x in rows], f"project {name}")
        _refuse_with_data(rows, name)
        return project.id, [(x.id, await teardown.target_of(p, s, x)) for x in rows]

    project_id, apps = await p.db.read(check)
    removed = await asyncio.gather(*(teardown.take_down(connect, x) for _, x in apps))
    for (_, target), done in zip(apps, removed, strict=True):
        teardown.require_placed_done(done, target)
    for service_id, _ in apps:
        await services.forget_preview_parts(p, connect, name, service_id)
    await p.db.write(lambda s: _forget(s, project_id), info=actor.audit_info)
    for service_id, _ in apps:
        await to_thread.run_sync(repos.remove_repo, repos.repo_root(p.settings.data_dir),
                                 service_id)
    return [x for done in removed for x in done]


def _refuse_with_data(rows: list[Service], project: str) -> None:
    """Stateful services go only through their own delete, which takes a final backup."""
    held = [x.name for x in rows if x.kind is not ServiceKind.APP]
    if held:
        raise Conflict(f"project {project} still holds data ({', '.join(held)}): delete each "
                       f"first with `dockyard services delete {held[0]} -p {project} --confirm "
                       f"{held[0]}`, which takes a final backup")


async def _forget(s: AsyncSession, project_id: str) -> None:
    """Previews first: each would otherwise go twice, with its project and its main app."""
    project = await s.get(Project, project_id)
    if project is None:
        return
    busy = await s.scalar(select(Service.name).join(Deployment).where(
        Service.project_id == project_id, Deployment.status.in_(ACTIVE_STATUSES)))
    if busy:
        raise Conflict(f"{project.name}/{busy} started deploying while the project was taken "
                       "down, so it is kept; delete the project again once that ends")
    for preview in await s.scalars(select(Service).where(
            Service.project_id == project_id, Service.preview_of.is_not(None))):
        await delete_recorded(s, preview)
    await delete_recorded(s, project)
