"""Reading a service's logs: the newest lines matching a filter, and following new ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.models.base import utcnow
from dockyard.models.logs import LogFilter, LogLinePublic
from dockyard.models.tables import LogLine

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
FOLLOW_BATCH = 1000


def since_moment(since: str, now: datetime) -> datetime:
    """'10m' → ten minutes before `now` (the value is checked by `LogFilter`)."""
    return now - timedelta(**{UNITS[since[-1]]: int(since[:-1])})


def _matching(service_id: str, wanted: LogFilter) -> Select[LogLine]:
    query = select(LogLine).where(LogLine.service_id == service_id)
    if wanted.process_type:
        query = query.where(LogLine.process_type == wanted.process_type)
    if wanted.release:
        query = query.where(LogLine.release.startswith(wanted.release, autoescape=True))
    if wanted.since:
        query = query.where(LogLine.time >= since_moment(wanted.since, utcnow()))
    if wanted.search:
        query = query.where(LogLine.line.icontains(wanted.search, autoescape=True))
    return query


async def _service_id(s: AsyncSession, actor: Actor, project: str, service: str) -> str:
    actor.require(Permission.READ)
    return (await service_named(s, actor, project, service)).id


async def read_logs(p: Platform, actor: Actor, project: str, service: str,
                    wanted: LogFilter) -> list[LogLinePublic]:
    """The newest `tail` matching lines, oldest first."""

    async def tx(s: AsyncSession) -> list[LogLinePublic]:
        query = _matching(await _service_id(s, actor, project, service), wanted)
        newest = query.order_by(LogLine.time.desc(), LogLine.id.desc()).limit(wanted.tail)
        rows = list(await s.scalars(newest))
        return [LogLinePublic.model_validate(row) for row in reversed(rows)]

    return await p.db.read(tx)


async def lines_after(p: Platform, actor: Actor, project: str, service: str,
                      wanted: LogFilter, after_id: int) -> list[LogLinePublic]:
    """Matching lines stored after the line `after_id`, in the order they were stored."""

    async def tx(s: AsyncSession) -> list[LogLinePublic]:
        query = _matching(await _service_id(s, actor, project, service), wanted)
        later = query.where(LogLine.id > after_id).order_by(LogLine.id).limit(FOLLOW_BATCH)
        return [LogLinePublic.model_validate(row) for row in await s.scalars(later)]

    return await p.db.read(tx)


async def follow(p: Platform, actor: Actor, project: str, service: str, wanted: LogFilter,
                 after_id: int = 0, poll_seconds: float = 1.0
                 ) -> AsyncIterator[list[LogLinePublic]]:
    """The tail (or, resuming, the lines after `after_id`), then new lines as they are
    stored; an empty batch when there was nothing new (a chance to keep the stream alive)."""
    batch = (await lines_after(p, actor, project, service, wanted, after_id) if after_id
             else await read_logs(p, actor, project, service, wanted))
    while True:
        yield batch
        after_id = max([after_id, *(line.id for line in batch)])
        await asyncio.sleep(poll_seconds)
        batch = await lines_after(p, actor, project, service, wanted, after_id)
