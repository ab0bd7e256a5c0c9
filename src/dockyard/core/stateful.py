"""Stateful services (Postgres, Redis): placed on a server, started from an image on a named
volume with a generated password, reachable by the project's apps at a stable name."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import NodeAgentClient
from dockyard.core.authz import Actor, Permission
from dockyard.core.deployments import redeploy_project_apps
from dockyard.core.lookup import project_named, service_named
from dockyard.core.platform import Platform
from dockyard.core.stateful_node import (
    PortTaken,
    container_state,
    keep_running,
    on_server,
    put_on_server,
    remove_from_server,
)
from dockyard.deploy import injection
from dockyard.deploy import stateful as shape
from dockyard.deploy.plan import site_name
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, InvalidInput, NotFound, ServerFailed
from dockyard.models.enums import DEPLOYABLE_SERVER_STATUSES, ServiceKind
from dockyard.models.schemas import ServerPublic
from dockyard.models.stateful import StatefulInstance, StatefulLink
from dockyard.models.stateful_schemas import StatefulCreate, StatefulPublic
from dockyard.models.tables import Placement, Project, Server, Service
from dockyard.providers import images

STATEFUL_KINDS = (ServiceKind.POSTGRES, ServiceKind.REDIS)


@dataclass(frozen=True)
class Located:
    """A stateful service with its record, its project's name and its server."""

    service: Service
    instance: StatefulInstance
    project: str
    server: ServerPublic

    def shape(self, password: str) -> shape.Instance:
        return shape.Instance(
            kind=self.service.kind, project=self.project, service=self.service.name,
            image=shape.parse_image(self.instance.image), port=self.instance.port,
            password=password, memory_mb=self.instance.memory_mb)


async def create_stateful(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                          body: StatefulCreate) -> StatefulPublic:
    """Record, place and start the service; it answers when this returns. A service that
    cannot start leaves no record behind."""
    located = await p.db.write(lambda s: _record(p, s, actor, project, body),
                               info=actor.audit_info)
    try:
        version = await _start(p, runner, located)
    except BaseException:
        await _take_away(runner, located)
        await _forget(p, actor, located)
        raise
    await _started(p, located.service.id, version)
    found = await stateful_info(p, runner, actor, project, body.name)
    if not body.redeploy:
        return found
    redeploys = await redeploy_project_apps(p, runner, actor, project)
    return found.model_copy(update={"redeploys": redeploys})


async def _record(p: Platform, s: AsyncSession, actor: Actor, project: str,
                  body: StatefulCreate) -> Located:
    actor.require(Permission.WRITE)
    parent = await project_named(s, actor, project)
    await _ensure_free(s, parent, body)
    server = await _placement(s, actor, body.server)
    service = Service(workspace_id=actor.workspace_id, project_id=parent.id, name=body.name,
                      kind=ServiceKind(body.kind), config={})
    s.add(service)
    await s.flush()
    instance = StatefulInstance(
        service_id=service.id, workspace_id=actor.workspace_id, server_id=server.id,
        port=await _free_port(s, server.id), image=_image(body), version=body.version or "",
        memory_mb=body.memory_mb, username=_user(body), database=_user(body),
        password_ciphertext=p.box.encrypt(secrets.token_urlsafe(24)), state="starting")
    s.add(instance)
    s.add(Placement(workspace_id=actor.workspace_id, service_id=service.id, server_id=server.id))
    await s.flush()
    return Located(service, instance, parent.name, ServerPublic.model_validate(server))


def _user(body: StatefulCreate) -> str:
    return body.name.replace("-", "_") if body.kind == "postgres" else ""


def _image(body: StatefulCreate) -> str:
    if body.image:
        return body.image
    engine = shape.ENGINES[ServiceKind(body.kind)]
    if body.version:
        return f"{engine.official_image}:{body.version}"
    # tagged by the recipe's cache key, so a node never runs an older build of it
    tarball = images.cached_tarball(images.RECIPES[body.kind], images.ImageSettings())
    tag = tarball.path.stem.removeprefix(f"{body.kind}-")
    return shape.offline_image(ServiceKind(body.kind), tag).reference


async def _ensure_free(s: AsyncSession, project: Project, body: StatefulCreate) -> None:
    rows = list(await s.execute(select(Service.name, Service.kind)
                                .where(Service.project_id == project.id)))
    if any(name == body.name for name, _ in rows):
        raise Conflict(f"a service named {body.name!r} already exists in this project")
    others = [(name, kind) for name, kind in rows if kind in STATEFUL_KINDS]
    clash = injection.clashing(others, body.name, ServiceKind(body.kind))
    if clash:
        variable = injection.variable_for(body.name, ServiceKind(body.kind))
        raise Conflict(f"{body.name!r} would be injected as {variable}, as {clash!r} is; "
                       "choose another name")


async def _placement(s: AsyncSession, actor: Actor, wanted: str | None) -> Server:
    """The named server, else the active one running the fewest services (then by name)."""
    query = select(Server).where(Server.workspace_id == actor.workspace_id,
                                 Server.status.in_(DEPLOYABLE_SERVER_STATUSES))
    if wanted:
        found = await s.scalar(query.where(Server.name == wanted))
        if found is None:
            raise NotFound("active server", wanted)
        return found
    load = (select(func.count()).where(Placement.server_id == Server.id)
            .correlate(Server).scalar_subquery())
    found = await s.scalar(query.order_by(load, Server.name).limit(1))
    if found is None:
        raise InvalidInput("there is no active server to run it on; add one with "
                           "`dockyard servers add` or run `dockyard up --local-node` as root")
    return found


async def _free_port(s: AsyncSession, server_id: str, above: int = 0) -> int:
    taken = set(await s.scalars(select(StatefulInstance.port)
                                .where(StatefulInstance.server_id == server_id)))
    port = shape.free_port(taken | set(range(above + 1)))
    if port is None:
        raise Conflict("that server has no free port for another stateful service")
    return port


async def _start(p: Platform, runner: DeployRunner, located: Located, tries: int = 5) -> str:
    """Start it; a port something else on the server holds is given up for the next free
    one (the control plane only knows the ports of its own services)."""
    allowed = await server_ips(p, located)
    for _ in range(tries - 1):
        try:
            async with on_server(runner.connect, located.server) as client:
                return await put_on_server(client, located.shape(password_of(p, located)), allowed)
        except PortTaken:
            located = await _move_port(p, located)
    async with on_server(runner.connect, located.server) as client:
        return await put_on_server(client, located.shape(password_of(p, located)), allowed)


async def _take_away(runner: DeployRunner, located: Located) -> None:
    """What a failed start left on the server: container, firewall rule, empty volume."""
    with suppress(ServerFailed):
        async with on_server(runner.connect, located.server) as client:
            await remove_from_server(client, located.shape(""), keep_rule=False, data=True)


async def _move_port(p: Platform, located: Located) -> Located:
    async def tx(s: AsyncSession) -> Located:
        instance = await s.get_one(StatefulInstance, located.service.id)
        instance.port = await _free_port(s, instance.server_id, above=instance.port)
        return replace(located, instance=instance)

    return await p.db.write(tx)


def password_of(p: Platform, located: Located) -> str:
    return p.box.decrypt(located.instance.password_ciphertext)


async def server_ips(p: Platform, located: Located) -> list[str]:
    """Who may reach the service: the addresses of its workspace's servers."""
    return await _workspace_ips(p, located.server.workspace_id)


async def _workspace_ips(p: Platform, workspace_id: str) -> list[str]:
    async def tx(s: AsyncSession) -> list[str]:
        query = select(Server.ip).where(Server.workspace_id == workspace_id, Server.ip != "")
        return sorted(set(await s.scalars(query)))

    return await p.db.read(tx)


async def _forget(p: Platform, actor: Actor, located: Located) -> None:
    async def tx(s: AsyncSession) -> None:
        service = await s.get(Service, located.service.id)
        if service is not None:
            await delete_recorded(s, service)

    await p.db.write(tx, info=actor.audit_info)


async def _started(p: Platform, service_id: str, version: str) -> None:
    """Running (the reconciler keeps it so from now on), with the version its log named."""
    async def tx(s: AsyncSession) -> None:
        instance = await s.get_one(StatefulInstance, service_id)
        instance.state = "running"
        instance.version = instance.version or version

    await p.db.write(tx)


async def locate(s: AsyncSession, actor: Actor, project: str, name: str) -> Located:
    """The stateful service `project/name`; NotFound for apps and unknown names."""
    service = await service_named(s, actor, project, name)
    instance = await s.get(StatefulInstance, service.id)
    if instance is None:
        raise NotFound("stateful service", f"{project}/{name}")
    server = ServerPublic.model_validate(await s.get_one(Server, instance.server_id))
    return Located(service, instance, project, server)


async def stateful_info(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                        name: str, show_secret: bool = False) -> StatefulPublic:
    """The service as `services info` shows it; the password only to admins who ask."""
    if show_secret:
        actor.require(Permission.READ_SECRETS)
    actor.require(Permission.READ)
    located = await p.db.read(lambda s: locate(s, actor, project, name))
    url = shape.service_url(located.shape(password_of(p, located)))
    try:
        async with on_server(runner.connect, located.server) as client:
            found = await container_state(client, located.shape(""))
    except ServerFailed:
        found = (None, None)  # the record still says what it is
    return _public(located, url if show_secret else injection.masked_url(url), found)


def _public(located: Located, url: str, found: tuple[str | None, int | None]
            ) -> StatefulPublic:
    service, instance = located.service, located.instance
    site = site_name(located.project, service.name)
    return StatefulPublic(
        project=located.project, name=service.name, kind=service.kind,
        server=located.server.name, hostname=shape.hostname(located.project, service.name),
        port=instance.port, image=instance.image, version=instance.version,
        memory_mb=instance.memory_mb, url=url, volume=shape.volume_name(site),
        variable=injection.variable_for(service.name, service.kind), state=instance.state,
        container_state=found[0], volume_bytes=found[1],
        backup_schedule=instance.backup_schedule, backup_retention=instance.backup_retention,
        created_at=service.created_at)


async def project_links(p: Platform, s: AsyncSession, project_id: str) -> list[StatefulLink]:
    """Every stateful service of the project, with the URL its apps get."""
    query = (select(Service, StatefulInstance, Project.name, Server.ip)
             .join(StatefulInstance, StatefulInstance.service_id == Service.id)
             .join(Project, Project.id == Service.project_id)
             .join(Server, Server.id == StatefulInstance.server_id)
             .where(Service.project_id == project_id).order_by(Service.name))
    return [_link(p, service, instance, project, ip)
            for service, instance, project, ip in await s.execute(query)]


def _link(p: Platform, service: Service, instance: StatefulInstance, project: str, ip: str
          ) -> StatefulLink:
    shaped = shape.Instance(kind=service.kind, project=project, service=service.name,
                            image=shape.parse_image(instance.image), port=instance.port,
                            password=p.box.decrypt(instance.password_ciphertext))
    return StatefulLink(service=service.name, kind=service.kind,
                        variable=injection.variable_for(service.name, service.kind),
                        url=shape.service_url(shaped), hostname=shape.hostname(
                            project, service.name), server_id=instance.server_id, server_ip=ip)


async def keep_stateful(p: Platform, server: ServerPublic, client: NodeAgentClient
                        ) -> list[str]:
    """The reconciler's pass over the stateful services `server` should run: each one
    running, and reachable from exactly the workspace's servers of today."""
    located = await p.db.read(lambda s: _on_server(s, server))
    allowed = await _workspace_ips(p, server.workspace_id)
    states = {c.name: c.state for c in await client.containers()}
    done = [await keep_running(client, x.shape(password_of(p, x)), allowed, states)
            for x in located]
    return [message for message in done if message]


async def _on_server(s: AsyncSession, server: ServerPublic) -> list[Located]:
    query = (select(Service, StatefulInstance, Project.name)
             .join(StatefulInstance, StatefulInstance.service_id == Service.id)
             .join(Project, Project.id == Service.project_id)
             .where(StatefulInstance.server_id == server.id,
                    StatefulInstance.state == "running"))
    return [Located(service, instance, project, server)
            for service, instance, project in await s.execute(query)]


async def stateful_action(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                          name: str, action: str) -> StatefulPublic:
    """start, stop or restart the service's container (its data stays)."""
    actor.require(Permission.WRITE)
    located = await p.db.read(lambda s: locate(s, actor, project, name))
    done = "stopped" if action == "stop" else "running"
    async with changing(p, actor, located, done), on_server(runner.connect,
                                                            located.server) as client:
        if action in ("stop", "restart"):
            await remove_from_server(client, located.shape(""), keep_rule=action == "restart")
        if action in ("start", "restart"):
            await put_on_server(client, located.shape(password_of(p, located)),
                                await server_ips(p, located))
    return await stateful_info(p, runner, actor, project, name)


@asynccontextmanager
async def changing(p: Platform, actor: Actor, located: Located, done: str | None
                   ) -> AsyncIterator[None]:
    """The reconciler leaves the service alone while its container is taken away and put
    back (it would put back what is being removed); `done` after (None: the caller forgets
    the service), the state it had if the change fails."""
    await _set_state(p, None, located, "changing")
    try:
        yield
    except BaseException:
        await _set_state(p, None, located, located.instance.state)
        raise
    if done is not None:
        await _set_state(p, actor, located, done)


async def _set_state(p: Platform, actor: Actor | None, located: Located, state: str) -> None:
    async def tx(s: AsyncSession) -> None:
        instance = await s.get_one(StatefulInstance, located.service.id)
        instance.state = state

    await p.db.write(tx, info=actor.audit_info if actor else None)


async def delete_stateful(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                          name: str, confirm: str) -> None:
    """Remove the service, its container and its data, after a final backup. `confirm`
    must repeat the name."""
    actor.require(Permission.DELETE)
    located = await p.db.read(lambda s: locate(s, actor, project, name))
    if confirm != name:
        raise InvalidInput(f"deleting {project}/{name} removes its data: confirm with its "
                           f"name (--confirm {name})")
    if located.instance.state == "stopped":  # started for its final backup
        await stateful_action(p, runner, actor, project, name, "start")
    if located.instance.state != "starting":  # a create that never finished holds no data
        await _final_backup(p, runner, actor, project, name)
    async with changing(p, actor, located, None), on_server(runner.connect,
                                                                 located.server) as client:
        await remove_from_server(client, located.shape(""), keep_rule=False, data=True)
    await _forget(p, actor, located)


async def _final_backup(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                        name: str) -> None:
    from dockyard.core import backups  # the backup flow needs this module too
    await backups.create_backup(p, runner, actor, project, name, trigger="final")
