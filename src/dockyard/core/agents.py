"""Node agents seen from the control plane: the workspace's agent secret, the key to install
on a server, and health polling of every registered server."""

from __future__ import annotations

import asyncio
import logging
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.auth import derive_agent_key
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.release import code_version
from dockyard.core import fleet
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import public_servers, server_by_id
from dockyard.core.platform import Platform
from dockyard.models.schemas import AgentKeyPublic, ServerPublic
from dockyard.models.tables import Workspace

log = logging.getLogger("dockyard.agents")
POLL_TIMEOUT = 10.0


async def _secret_of(p: Platform, s: AsyncSession, workspace_id: str) -> str:
    """The workspace's agent secret, made on first use. Never tied to a cloud token."""
    workspace = await s.get_one(Workspace, workspace_id)
    if not workspace.agent_secret_ciphertext:
        workspace.agent_secret_ciphertext = p.box.encrypt(secrets.token_hex(32))
        await s.flush()
    return p.box.decrypt(workspace.agent_secret_ciphertext)


async def agent_secrets(p: Platform) -> dict[str, str]:
    """Every workspace's agent secret, by workspace id, for the poller."""

    async def tx(s: AsyncSession) -> dict[str, str]:
        ids = (await s.scalars(select(Workspace.id))).all()
        return {workspace_id: await _secret_of(p, s, workspace_id) for workspace_id in ids}

    return await p.db.write(tx)


async def secret_for(p: Platform, workspace_id: str) -> str:
    """The workspace's agent secret, for the deploy engine's clients."""

    async def tx(s: AsyncSession) -> str:
        return await _secret_of(p, s, workspace_id)

    return await p.db.write(tx)


async def install_key(p: Platform, actor: Actor) -> AgentKeyPublic:
    """The key a new server's agent must hold to accept this workspace's calls (admins)."""

    async def tx(s: AsyncSession) -> str:
        actor.require(Permission.MANAGE_SERVERS)
        return await _secret_of(p, s, actor.workspace_id)

    secret = await p.db.write(tx, info=actor.audit_info)
    return AgentKeyPublic(key=derive_agent_key(secret).hex(), expected_version=code_version())


def url_host(ip: str) -> str:
    """An address as it goes in a URL: IPv6 literals in brackets."""
    return f"[{ip}]" if ":" in ip else ip


def agent_url(server: ServerPublic) -> str:
    scheme = "http" if server.agent_insecure_http else "https"
    return f"{scheme}://{url_host(server.ip)}:{server.agent_port}"


def client_for(server: ServerPublic, secret: str, timeout: float) -> NodeAgentClient:
    """A client of the server's agent that only talks to its pinned certificate."""
    return NodeAgentClient(agent_url(server), secret, fingerprint=server.agent_fingerprint,
                           timeout=timeout)


def client_factory(secrets_by_workspace: dict[str, str]) -> fleet.ClientFactory:
    def client_of(server: ServerPublic) -> NodeAgentClient:
        return client_for(server, secrets_by_workspace[server.workspace_id], POLL_TIMEOUT)

    return client_of


async def poll_all(p: Platform) -> list[fleet.Observation]:
    return await fleet.poll_fleet(p, client_factory(await agent_secrets(p)))


async def check_server(p: Platform, actor: Actor, server_id: str) -> ServerPublic:
    """Ask one server's agent now and record what it says."""

    async def tx(s: AsyncSession) -> tuple[ServerPublic, str]:
        actor.require(Permission.WRITE)
        server = ServerPublic.model_validate(await server_by_id(s, actor, server_id))
        return server, await _secret_of(p, s, actor.workspace_id)

    server, secret = await p.db.write(tx, info=actor.audit_info)
    client_of = client_factory({server.workspace_id: secret})
    await fleet.record(p, await fleet.observe(server, client_of))

    async def reread(s: AsyncSession) -> ServerPublic:
        return (await public_servers(s, [await server_by_id(s, actor, server_id)]))[0]

    return await p.db.read(reread)


async def poll_forever(p: Platform, interval: float) -> None:
    """The control plane's health loop; one failed round is logged, never fatal."""
    while True:
        try:
            await poll_all(p)
        except Exception:
            log.exception("polling the agents failed; trying again in %.0f s", interval)
        await asyncio.sleep(interval)
