"""A domain on the servers that run its service: its name in the service's site, its
certificate on each edge, the ACME challenges answered there. Each call goes to every server
and says which could not be reached (the reconciler brings those in line later)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import NodeAgentClient, unless_gone
from dockyard.agent.models import CertificateInstall
from dockyard.core.stateful_node import on_server
from dockyard.deploy.run import Connect
from dockyard.kernel.errors import ServerFailed
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Placement, Server

Step = Callable[[NodeAgentClient], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """Which servers a step reached, and why the others failed."""

    done: list[str]
    failed: list[str]


async def servers_running(s: AsyncSession, service_id: str) -> list[ServerPublic]:
    """The servers placed for a service (not decommissioned), by name."""
    query = (select(Server).join(Placement, Placement.server_id == Server.id)
             .where(Placement.service_id == service_id,
                    Server.status != ServerStatus.DECOMMISSIONED).order_by(Server.name))
    return [ServerPublic.model_validate(row) for row in await s.scalars(query)]


async def on_every(connect: Connect, servers: list[ServerPublic], step: Step) -> Outcome:
    """`step` with each server's agent, all at once."""
    async def one(server: ServerPublic) -> str | None:
        try:
            async with on_server(connect, server) as client:
                await step(client)
        except ServerFailed as exc:
            return exc.message
        return None

    results = await asyncio.gather(*(one(server) for server in servers))
    failed = [why for why in results if why is not None]
    done = [server.name for server, why in zip(servers, results, strict=True) if why is None]
    return Outcome(done, failed)


def rename_site(site: str, names: list[str]) -> Step:
    """Give the service's site on a server these names (a site not there yet gets them at
    its first deploy)."""
    async def step(client: NodeAgentClient) -> None:
        current = next((x for x in await client.sites() if x.service == site), None)
        if current is not None and current.server_names != names:
            await client.apply_site(current.model_copy(update={"server_names": names}))

    return step


def install_certificate(hostname: str, install: CertificateInstall) -> Step:
    async def step(client: NodeAgentClient) -> None:
        await client.install_certificate(hostname, install)

    return step


def remove_certificate(hostname: str) -> Step:
    async def step(client: NodeAgentClient) -> None:
        await unless_gone(client.remove_certificate(hostname))

    return step


def put_challenge(token: str, key_authorization: str) -> Step:
    async def step(client: NodeAgentClient) -> None:
        await client.put_acme_challenge(token, key_authorization)

    return step


def remove_challenge(token: str) -> Step:
    async def step(client: NodeAgentClient) -> None:
        await unless_gone(client.remove_acme_challenge(token))

    return step

