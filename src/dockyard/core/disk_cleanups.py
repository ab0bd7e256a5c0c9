"""The servers' disk cleanings, in the control plane. Each agent cleans its own disk (see
`dockyard.agent.disk_guard`) and keeps its last cleanings; the metrics job writes each one it
has not recorded yet as a server event `disk` (the disk alert and `dockyard servers events`
read them), and `dockyard servers prune` has an agent clean now."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.core import agents
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import server_by_id
from dockyard.core.platform import Platform
from dockyard.core.stateful_node import on_server
from dockyard.models.disk import DiskCleanup
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import ServerEvent

DISK_EVENT = "disk"
PRUNE_SECONDS = 300.0  # removing many images on a slow disk takes a while


def event_time(cleanup: DiskCleanup) -> datetime:
    return datetime.fromtimestamp(cleanup.at, UTC)


async def record_new(s: AsyncSession, server_id: str, cleanups: list[DiskCleanup]) -> int:
    """A server event for each cleaning after the server's last one recorded (an event's time
    is its cleaning's, so a cleaning seen again is not recorded twice); how many."""
    query = select(func.max(ServerEvent.time)).where(ServerEvent.server_id == server_id,
                                                     ServerEvent.kind == DISK_EVENT)
    last = await s.scalar(query)
    new = [found for found in cleanups if last is None or event_time(found) > last]
    s.add_all(ServerEvent(server_id=server_id, kind=DISK_EVENT, time=event_time(found),
                          message=found.summary()) for found in new)
    return len(new)


async def collect_cleanups(p: Platform, server: ServerPublic, client: NodeAgentClient) -> int:
    """Record the agent's cleanings not recorded yet; an agent too old to keep them has
    none to tell (it does not clean by itself either: upgrade it)."""
    try:
        cleanups = await client.disk_cleanups()
    except AgentError as exc:
        if exc.status_code != 404:
            raise
        return 0
    return await p.db.write(lambda s: record_new(s, server.id, cleanups))


async def prune_server(p: Platform, actor: Actor, server_id: str) -> DiskCleanup:
    """Have the server's agent clean its disk now, whatever its threshold, and record it."""

    async def tx(s: AsyncSession) -> ServerPublic:
        actor.require(Permission.WRITE)
        return ServerPublic.model_validate(await server_by_id(s, actor, server_id))

    server = await p.db.read(tx)
    secret = await agents.secret_for(p, server.workspace_id)

    async def connect(found: ServerPublic) -> NodeAgentClient:
        return agents.client_for(found, secret, PRUNE_SECONDS)

    async with on_server(connect, server) as client:
        cleanup = await client.clean_disk()
    await p.db.write(lambda s: record_new(s, server.id, [cleanup]))
    return cleanup
