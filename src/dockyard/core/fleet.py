"""Agent health polling: ask each server's agent for its info and its node's data path
(both nginx layers, a request through the edge to each site), and record what it says:
`active`, `degraded` with the problems it found, or `unreachable` with why."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.core.platform import Platform
from dockyard.kernel.audit import UNAUDITED
from dockyard.models.enums import UNPOLLED_SERVER_STATUSES, ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server

log = logging.getLogger("dockyard.fleet")
ClientFactory = Callable[[ServerPublic], NodeAgentClient]
MAX_REASON = 1000


@dataclass(frozen=True)
class Observation:
    server_id: str
    status: ServerStatus
    agent_version: str | None
    reason: str = ""


async def data_path_problems(client: NodeAgentClient) -> list[str]:
    """What the agent finds broken on its node's data path (nothing from an agent too old
    to have the health route)."""
    try:
        return (await client.node_health()).problems
    except AgentError as exc:
        if exc.status_code == 404:
            return []
        raise


async def observe(server: ServerPublic, client_for: ClientFactory) -> Observation:
    """One server's agent as seen now: active with its version, degraded with its node's
    problems, or unreachable (also when no client can be made for it, so one bad row never
    fails a whole poll)."""
    try:
        async with client_for(server) as client:
            info = await client.info()
            problems = await data_path_problems(client)
    except (AgentError, httpx.HTTPError, httpx.InvalidURL) as exc:
        log.warning("agent of server %s unreachable: %s", server.name, exc)
        reason = f"agent unreachable: {str(exc) or type(exc).__name__}"
        return Observation(server.id, ServerStatus.UNREACHABLE, server.agent_version,
                           reason[:MAX_REASON])
    status = ServerStatus.DEGRADED if problems else ServerStatus.ACTIVE
    return Observation(server.id, status, info.agent_version, "; ".join(problems)[:MAX_REASON])


async def record(platform: Platform, observation: Observation) -> None:
    async def tx(session: AsyncSession) -> None:
        server = await session.get(Server, observation.server_id)
        if server is None or server.status in UNPOLLED_SERVER_STATUSES:
            return
        seen = (observation.status, observation.agent_version, observation.reason)
        if (server.status, server.agent_version, server.status_reason) != seen:
            server.status, server.agent_version, server.status_reason = seen

    await platform.db.write(tx, info=UNAUDITED)  # an observation, not a change anyone made


async def pollable_servers(platform: Platform) -> list[ServerPublic]:
    async def tx(session: AsyncSession) -> list[ServerPublic]:
        query = select(Server).where(Server.status.not_in(UNPOLLED_SERVER_STATUSES))
        return [ServerPublic.model_validate(s) for s in await session.scalars(query)]

    return await platform.db.read(tx)


async def poll_fleet(platform: Platform, client_for: ClientFactory, *, concurrency: int = 8
                     ) -> list[Observation]:
    """Poll every server that is not decommissioned (bounded parallelism) and record it."""
    gate = asyncio.Semaphore(concurrency)

    async def one(server: ServerPublic) -> Observation:
        async with gate:
            observation = await observe(server, client_for)
        await record(platform, observation)
        return observation

    return list(await asyncio.gather(*(one(s) for s in await pollable_servers(platform))))


async def poll_forever(platform: Platform, client_for: ClientFactory, interval: float = 30
                       ) -> None:
    while True:
        await poll_fleet(platform, client_for)
        await asyncio.sleep(interval)
