"""Container logs into the control plane: a periodic job of the worker pulls every agent's
log buffer after the cursor stored for its server, and stores the lines and the new cursor
in one transaction (so a line is stored once, and an outage only delays it). Another job
prunes lines by age and by size per service. Neither logs a line per log line."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError
from dockyard.agent.logbuffer import LogEntry
from dockyard.core import agents, fleet
from dockyard.core.batches import delete_in_batches
from dockyard.core.platform import Platform
from dockyard.deploy.plan import DEPLOYMENT_LABEL, process_of, site_name
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.kernel.security import Keys, SecretBox, read_key_file
from dockyard.models.base import utcnow
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import LogCursor, LogLine, Project, Server, Service

log = logging.getLogger("dockyard.logs")
PAGE_SIZE = 1000
MAX_PAGES_PER_RUN = 50
COLLECT_TASK = "logs.collect"
PRUNE_TASK = "logs.prune"
ROW_BYTES = 480


@dataclass(frozen=True)
class Collected:
    stored: int
    lost: int


async def collect(p: Platform, client_of: fleet.ClientFactory | None = None) -> Collected:
    """Pull new lines from every server's agent; an unreachable one waits for the next run."""
    servers = await _servers(p)
    client_of = client_of or agents.client_factory(await agents.agent_secrets(p))
    stored = lost = 0
    for server in servers:
        try:
            result = await collect_server(p, server, client_of)
        except (AgentError, httpx.HTTPError, OSError) as exc:
            log.warning("logs of server %s not collected this time: %s: %s", server.name,
                        type(exc).__name__, exc)
            continue
        stored, lost = stored + result.stored, lost + result.lost
    return Collected(stored, lost)


async def _servers(p: Platform) -> list[ServerPublic]:
    async def tx(s: AsyncSession) -> list[ServerPublic]:
        return [ServerPublic.model_validate(r) for r in await s.scalars(select(Server))]

    return await p.db.read(tx)


async def collect_server(p: Platform, server: ServerPublic,
                         client_of: fleet.ClientFactory) -> Collected:
    stored = lost = 0
    async with client_of(server) as client:
        for _ in range(MAX_PAGES_PER_RUN):
            page = await client.log_page(await _cursor(p, server.id), PAGE_SIZE)
            if not page.entries:
                break
            result = await _store(p, server, page.entries, page.first_seq)
            stored, lost = stored + result.stored, lost + result.lost
    return Collected(stored, lost)


async def _cursor(p: Platform, server_id: str) -> int:
    async def tx(s: AsyncSession) -> int:
        return await s.scalar(select(LogCursor.seq).where(LogCursor.server_id == server_id)) or 0

    return await p.db.read(tx)


async def _store(p: Platform, server: ServerPublic, entries: Sequence[LogEntry],
                 first_seq: int) -> Collected:
    async def tx(s: AsyncSession) -> Collected:
        cursor = await s.get(LogCursor, server.id, with_for_update=True)
        if cursor is None:
            cursor = LogCursor(server_id=server.id, seq=0, lost=0)
            s.add(cursor)
        fresh = [entry for entry in entries if entry.seq > cursor.seq]
        lost = max(0, first_seq - cursor.seq - 1) if fresh else 0
        services = await _services_by_site(s, server.workspace_id)
        rows = [_row(server, services[e.service], e) for e in fresh if e.service in services]
        s.add_all(rows)
        if fresh:
            cursor.seq, cursor.lost, cursor.updated_at = fresh[-1].seq, cursor.lost + lost, utcnow()
        return Collected(len(rows), lost)

    return await p.db.write(tx)


async def _services_by_site(s: AsyncSession, workspace_id: str) -> dict[str, str]:
    """Service ids by the node-side name their containers carry."""
    query = (select(Service.id, Service.name, Project.name).join(Project)
             .where(Project.workspace_id == workspace_id))
    return {site_name(project, name): id_ for id_, name, project in await s.execute(query)}


def _row(server: ServerPublic, service_id: str, entry: LogEntry) -> LogLine:
    kind, replica = process_of(entry.labels)
    return LogLine(
        workspace_id=server.workspace_id, service_id=service_id, server_id=server.id,
        server_name=server.name, process_type=kind, replica=replica,
        release=entry.labels.get(DEPLOYMENT_LABEL, "")[:32], container=entry.container[:128],
        stream=entry.stream, time=entry.time, line=entry.line, size=stored_size(entry.line))


def stored_size(line: str) -> int:
    """What a line takes in the database: its text and the row around it (its other
    columns and five index entries: about 480 bytes on SQLite, measured by bench/soak.py),
    so that the per-service bound bounds the disk, not only the text."""
    return len(line.encode()) + ROW_BYTES


async def prune(p: Platform) -> int:
    """Drop lines older than the retention, then each service's oldest beyond its size,
    in batches (each its own short transaction)."""
    max_bytes = p.settings.log_max_bytes_per_service
    oldest = utcnow() - timedelta(days=p.settings.log_retention_days)
    dropped = (await delete_in_batches(p.db, LogLine, LogLine.time < oldest, LogLine.id,
                                       p.settings.retention_batch)).rows
    for service_id in await p.db.read(lambda s: _services_over(s, max_bytes)):
        dropped += await _shrink(p, service_id, max_bytes)
    return dropped


async def _shrink(p: Platform, service_id: str, max_bytes: int) -> int:
    """Delete the service's oldest lines so that the newest fit in `max_bytes`."""
    newest_dropped = await p.db.read(lambda s: _newest_beyond(s, service_id, max_bytes))
    if newest_dropped is None:
        return 0
    older = and_(LogLine.service_id == service_id, LogLine.id <= newest_dropped)
    pruned = await delete_in_batches(p.db, LogLine, older, LogLine.id,
                                     p.settings.retention_batch)
    return pruned.rows


async def _services_over(s: AsyncSession, max_bytes: int) -> list[str]:
    query = (select(LogLine.service_id).group_by(LogLine.service_id)
             .having(func.sum(LogLine.size) > max_bytes))
    return list((await s.scalars(query)).all())


async def _newest_beyond(s: AsyncSession, service_id: str, max_bytes: int) -> int | None:
    """The newest line of the service that no longer fits in `max_bytes` with the lines
    after it (a running sum from the newest back, in the database)."""
    total = func.sum(LogLine.size).over(order_by=LogLine.id.desc()).label("total")
    sums = select(LogLine.id, total).where(LogLine.service_id == service_id).subquery()
    query = (select(sums.c.id).where(sums.c.total > max_bytes).order_by(sums.c.id.desc())
             .limit(1))
    found: int | None = await s.scalar(query)
    return found


TASKS = Tasks()
TASKS.every(COLLECT_TASK, "* * * * * */5", COLLECT_TASK)
TASKS.every(PRUNE_TASK, "* * * * *", PRUNE_TASK)  # a chatty service writes ~1,000 lines/s


def _platform(context: JobContext) -> Platform:
    """The worker's resources as a Platform (made once per worker)."""
    resources = context.resources
    if "platform" not in resources:
        settings = resources["settings"]
        keys = Keys.from_master(read_key_file(settings.key_file))
        resources["platform"] = Platform(settings=settings, db=resources["db"], keys=keys,
                                         box=SecretBox(keys.secrets))
    platform: Platform = resources["platform"]
    return platform


@TASKS.task(COLLECT_TASK, max_attempts=1, coalesce=True)
async def collect_job(context: JobContext, payload: dict[str, Any]) -> None:
    await collect(_platform(context))


@TASKS.task(PRUNE_TASK, max_attempts=1, coalesce=True)
async def prune_job(context: JobContext, payload: dict[str, Any]) -> None:
    await prune(_platform(context))
