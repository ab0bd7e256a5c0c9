"""Agent health polling: ask each server's agent for its info and record what it says."""

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
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server

log = logging.getLogger("dockyard.fleet")
ClientFactory = Callable[[ServerPublic], NodeAgentClient]


@dataclass(frozen=True)
class Observation:
    server_id: str
    status: ServerStatus
    agent_version: str | None


async def observe(server: ServerPublic, client_for: ClientFactory) -> Observation:
    """One server's agent as seen now: active with its version, or unreachable (also when
    no client can be made for it, so one bad row never fails a whole poll)."""
    try:
        async with client_for(server) as client:
            info = await client.info()
    except (AgentError, httpx.HTTPError, httpx.InvalidURL) as exc:
        log.warning("agent of server %s unreachable: %s", server.name, exc)
        return Observation(server.id, ServerStatus.UNREACHABLE, server.agent_version)
    return Observation(server.id, ServerStatus.ACTIVE, info.agent_version)


async def record(platform: Platform, observation: Observation) -> None:
    async def tx(session: AsyncSession) -> None:
        server = await session.get(Server, observation.server_id)
        if server is None or server.status == ServerStatus.DECOMMISSIONED:
            return
        if (server.status, server.agent_version) != (observation.status,
                                                     observation.agent_version):
            server.status = observation.status
            server.agent_version = observation.agent_version

    await platform.db.write(tx)


async def pollable_servers(platform: Platform) -> list[ServerPublic]:
    async def tx(session: AsyncSession) -> list[ServerPublic]:
        query = select(Server).where(Server.status != ServerStatus.DECOMMISSIONED)
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
