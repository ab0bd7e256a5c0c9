"""Stateful services as rows (no container): what injection reads of them, for the tests of
injection that deploy apps beside them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from dockyard.core.platform import Platform
from dockyard.models.enums import ServiceKind
from dockyard.models.stateful import StatefulInstance
from dockyard.models.tables import Project, Server, Service


async def add_stateful(platform: Platform, workspace_id: str, project: str, name: str,
                       kind: ServiceKind, server: str, port: int) -> str:
    """A stateful service `project/name` recorded as running on `server`; its password is
    `pw-NAME`. Returns the service id."""

    async def tx(s: Any) -> str:
        parent = await s.scalar(select(Project).where(Project.workspace_id == workspace_id,
                                                      Project.name == project))
        host = await s.scalar(select(Server).where(Server.workspace_id == workspace_id,
                                                   Server.name == server))
        service = Service(workspace_id=workspace_id, project_id=parent.id, name=name,
                          kind=kind, config={})
        s.add(service)
        await s.flush()
        user = name.replace("-", "_") if kind is ServiceKind.POSTGRES else ""
        s.add(StatefulInstance(service_id=service.id, workspace_id=workspace_id,
                               server_id=host.id, port=port, image=f"dockyard/{kind.value}:t",
                               username=user, database=user,
                               password_ciphertext=platform.box.encrypt(f"pw-{name}")))
        return str(service.id)

    return await platform.db.write(tx)


async def remove_stateful(platform: Platform, service_id: str) -> None:
    async def tx(s: Any) -> None:
        await s.delete(await s.get_one(StatefulInstance, service_id))
        await s.delete(await s.get_one(Service, service_id))

    await platform.db.write(tx)


async def set_server_ip(platform: Platform, workspace_id: str, server: str, ip: str) -> None:
    async def tx(s: Any) -> None:
        await s.execute(update(Server).where(Server.workspace_id == workspace_id,
                                             Server.name == server).values(ip=ip))

    await platform.db.write(tx)
