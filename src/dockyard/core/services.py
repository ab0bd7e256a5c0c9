"""Services: the deployable units of a project."""

from __future__ import annotations

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import preview_access, teardown
from dockyard.core.authz import Actor, Permission
from dockyard.core.deploy_targets import hosts_of
from dockyard.core.dns import default_dns_for
from dockyard.core.lookup import project_named, refuse_with_domains, service_named
from dockyard.core.platform import Platform
from dockyard.deploy.run import Connect
from dockyard.gitpush import repos
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, InvalidInput
from dockyard.models.enums import ServiceKind
from dockyard.models.schemas import ServiceCreate, ServicePublic, ServiceUpdate
from dockyard.models.tables import Service


async def _ensure_free(s: AsyncSession, project_id: str, name: str) -> None:
    query = select(Service.id).where(Service.project_id == project_id, Service.name == name)
    if await s.scalar(query):
        raise Conflict(f"a service named {name!r} already exists in this project")


async def list_services(p: Platform, actor: Actor, project: str) -> list[ServicePublic]:
    async def tx(s: AsyncSession) -> list[ServicePublic]:
        actor.require(Permission.READ)
        parent = await project_named(s, actor, project)
        query = select(Service).where(Service.project_id == parent.id).order_by(Service.name)
        return [ServicePublic.model_validate(r) for r in await s.scalars(query)]

    return await p.db.read(tx)


async def get_service(p: Platform, actor: Actor, project: str, name: str) -> ServicePublic:
    """The service, with the addresses it answers at on its servers."""

    async def tx(s: AsyncSession) -> ServicePublic:
        actor.require(Permission.READ)
        service = await service_named(s, actor, project, name)
        urls = [f"http://{host}/" for host in await hosts_of(p, s, service, project)]
        return ServicePublic.model_validate(service).model_copy(update={"urls": urls})

    return await p.db.read(tx)


async def create_service(
    p: Platform, actor: Actor, project: str, body: ServiceCreate
) -> ServicePublic:
    async def tx(s: AsyncSession) -> ServicePublic:
        parent = await project_named(s, actor, project)
        actor.require(Permission.WRITE)
        if body.kind is not ServiceKind.APP:
            raise InvalidInput(f"create a {body.kind} service with `dockyard services create "
                               f"{body.name} --kind {body.kind}` (POST /projects/{project}/"
                               "stateful): it is placed and started there")
        await _ensure_free(s, parent.id, body.name)
        service = Service(
            workspace_id=actor.workspace_id, project_id=parent.id, name=body.name,
            kind=body.kind, image=body.image, config=body.config.model_dump(),
        )
        s.add(service)
        await s.flush()
        return ServicePublic.model_validate(service)

    return await p.db.write(tx, info=actor.audit_info)


async def update_service(
    p: Platform, actor: Actor, project: str, name: str, body: ServiceUpdate
) -> ServicePublic:
    async def tx(s: AsyncSession) -> ServicePublic:
        service = await service_named(s, actor, project, name)
        actor.require(Permission.WRITE)
        if body.name is not None and body.name != service.name:
            await _ensure_free(s, service.project_id, body.name)
            service.name = body.name
        if body.image is not None:
            service.image = body.image
        if body.config is not None:
            service.config = body.config.model_dump()
        await s.flush()
        return ServicePublic.model_validate(service)

    return await p.db.write(tx, info=actor.audit_info)


async def delete_service(p: Platform, connect: Connect, actor: Actor, project: str, name: str
                         ) -> list[teardown.Removed]:
    """An app is taken off every server (containers, site, images, certificates) before its
    row goes; what each server no longer has is returned."""
    async def check(s: AsyncSession) -> tuple[str, teardown.Target]:
        service = await service_named(s, actor, project, name)
        actor.require(Permission.DELETE)
        if service.kind is not ServiceKind.APP:
            raise InvalidInput(f"{project}/{name} holds data: delete it with `dockyard services "
                               f"delete {name} --confirm {name}` (DELETE /projects/{project}/"
                               f"stateful/{name}?confirm={name}), which takes a final backup")
        await refuse_with_domains(s, [service.id], f"{project}/{name}")
        await _refuse_with_previews(s, service, project)
        return service.id, await teardown.target_of(p, s, service)

    service_id, target = await p.db.read(check)
    removed = await teardown.take_down(connect, target)
    teardown.require_placed_done(removed, target)
    await forget_preview_parts(p, connect, project, service_id)
    await p.db.write(lambda s: forget_service(s, service_id), info=actor.audit_info)
    await to_thread.run_sync(repos.remove_repo, repos.repo_root(p.settings.data_dir), service_id)
    return removed


async def forget_service(s: AsyncSession, service_id: str) -> None:
    """Delete the service's row (and, recorded, the rows that go with it); gone is fine."""
    service = await s.get(Service, service_id)
    if service is not None:
        await delete_recorded(s, service)


async def _refuse_with_previews(s: AsyncSession, service: Service, project: str) -> None:
    previews = list(await s.scalars(select(Service.name).where(
        Service.preview_of == service.id).order_by(Service.name)))
    if previews:
        raise Conflict(f"{project}/{service.name} has preview environments "
                       f"({', '.join(previews)}); delete them first (`dockyard services "
                       f"delete {previews[0]} -p {project}`)")


async def forget_preview_parts(p: Platform, connect: Connect, project: str, service_id: str
                                ) -> None:
    """A preview's database users and DNS record (nothing for another app)."""
    from dockyard.core.previews import remove_dns_of  # core.previews deletes through here

    await preview_access.revoke(p, connect, project, service_id)
    await remove_dns_of(p, service_id, default_dns_for(p.settings))
