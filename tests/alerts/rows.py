"""Rows the alert tests build their world from: a project, services, servers, placements,
deployments, backups, domains, events, written straight into the real database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.alert_schemas import shown_target
from dockyard.models.alert_tables import Alert, AlertDelivery, NotificationChannel
from dockyard.models.base import Base, new_id, utcnow
from dockyard.models.enums import ServiceKind
from dockyard.models.tables import Project, Server, Service


@dataclass(frozen=True)
class World:
    workspace_id: str
    project_id: str
    service_id: str
    servers: tuple[str, str]


async def add(platform: Platform, *rows: Base) -> None:
    async def tx(s: AsyncSession) -> None:
        s.add_all(rows)

    await platform.db.write(tx)


async def build_world(platform: Platform, workspace_id: str) -> World:
    project = Project(id=new_id(), workspace_id=workspace_id, name="shop")
    service = Service(id=new_id(), workspace_id=workspace_id, project_id=project.id, name="web",
                      kind=ServiceKind.APP)
    servers = [Server(id=new_id(), workspace_id=workspace_id, provider="local", name=name)
               for name in ("s1", "s2")]
    await add(platform, project, service, *servers)
    return World(workspace_id, project.id, service.id, (servers[0].id, servers[1].id))


async def update(platform: Platform, table: type[Base], id_: Any, **values: Any) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await s.get_one(table, id_)
        for key, value in values.items():
            setattr(row, key, value)

    await platform.db.write(tx)


async def alerts(platform: Platform) -> list[tuple[str, str, int]]:
    """(key, state, repeats) of every alert, oldest first."""

    async def tx(s: AsyncSession) -> list[tuple[str, str, int]]:
        query = select(Alert.key, Alert.state, Alert.repeats).order_by(Alert.first_at, Alert.key)
        return [(k, st, r) for k, st, r in await s.execute(query)]

    return await platform.db.read(tx)


async def deliveries(platform: Platform) -> list[tuple[str, str, str]]:
    """(alert key, event, status) of every delivery, in the order made."""

    async def tx(s: AsyncSession) -> list[tuple[str, str, str]]:
        query = (select(Alert.key, AlertDelivery.event, AlertDelivery.status)
                 .join(Alert, Alert.id == AlertDelivery.alert_id)
                 .order_by(AlertDelivery.created_at, Alert.key))
        return [(k, e, st) for k, e, st in await s.execute(query)]

    return await platform.db.read(tx)


async def add_channel(platform: Platform, workspace_id: str, kind: str, target: str,
                      secret: str = "") -> str:
    row = NotificationChannel(id=new_id(), workspace_id=workspace_id, kind=kind,
                              target=shown_target(kind, target),
                              target_ciphertext=platform.box.encrypt(target),
                              secret_ciphertext=platform.box.encrypt(secret) if secret else "")
    await add(platform, row)
    return row.id


def minutes(count: float, since: datetime | None = None) -> datetime:
    return (since or utcnow()) + timedelta(minutes=count)


def keys(found: Sequence[tuple[Any, ...]]) -> list[str]:
    return [row[0].partition(":")[0] for row in found]
