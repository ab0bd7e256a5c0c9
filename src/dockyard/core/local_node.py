"""This machine as a server of the first workspace: its Docker, an agent, and nginx."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.auth import write_key_file
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.core import agents
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.core.servers import pin_certificate, register_server
from dockyard.kernel.settings import Settings
from dockyard.models.enums import Role
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Membership, Server
from dockyard.providers import local, netns, registry

LOCAL_NAME = "local"


def launch_of(settings: Settings) -> local.AgentLaunch:
    return local.AgentLaunch(
        state_dir=settings.data_dir / "local-agent", host="127.0.0.1",
        port=settings.local_agent_port, docker_host=f"unix://{local.DEFAULT_DOCKER_SOCKET}",
        nginx_http_port=settings.local_http_port, nginx_https_port=settings.local_https_port,
        other_logs=(settings.data_dir / "local-agent" / "dockerd.log",),  # if we start dockerd
    )


def registry_dir(settings: Settings) -> Path:
    return settings.data_dir / "registry"


def _start(launch: local.AgentLaunch, key: bytes, settings: Settings) -> None:
    """Docker (started if needed), the registry deploys push to, and the agent, unless an
    agent already answers there."""
    local.ensure_local_docker(launch.state_dir)
    registry.ensure_registry(settings.registry, registry_dir(settings))
    if not local.agent_answers(launch.url):
        write_key_file(launch.state_dir / "agent.key", key)
        local.start_agent(launch)


async def _first_owner(p: Platform) -> Actor:
    async def tx(s: AsyncSession) -> Actor:
        query = select(Membership).where(Membership.role == Role.OWNER)
        first = (await s.scalars(query.order_by(Membership.created_at))).first()
        if first is None:
            raise RuntimeError("there is no owner yet; run `dockyard up` first")
        return Actor(first.user_id, first.workspace_id, Role.OWNER)

    return await p.db.read(tx)


async def _registered(p: Platform, owner: Actor, launch: local.AgentLaunch) -> ServerPublic:
    """The local server, its pin the certificate on this machine's disk."""

    async def tx(s: AsyncSession) -> Server | None:
        query = select(Server).where(
            Server.workspace_id == owner.workspace_id, Server.name == LOCAL_NAME
        )
        return await s.scalar(query)

    fingerprint = await asyncio.to_thread(launch.fingerprint)
    found = await p.db.read(tx)
    if found is None:
        return await register_server(
            p, owner.workspace_id, name=LOCAL_NAME, provider="local", ip=launch.host,
            provider_id=LOCAL_NAME, agent_port=launch.port, agent_fingerprint=fingerprint,
        )
    if found.agent_fingerprint != fingerprint or found.agent_insecure_http:
        await pin_certificate(p, found.id, fingerprint)
    return ServerPublic.model_validate(found)


async def ensure_local_node(p: Platform) -> ServerPublic:
    """Start this machine's agent with the first workspace's key, add it to that workspace's
    inventory once, and return it as its agent answers now."""
    owner = await _first_owner(p)
    key = bytes.fromhex((await agents.install_key(p, owner)).key)
    launch = launch_of(p.settings)
    await asyncio.to_thread(_start, launch, key, p.settings)
    server = await _registered(p, owner, launch)
    return await agents.check_server(p, owner, server.id)


def stop_local_node(launch: local.AgentLaunch, settings: Settings) -> None:
    """Stop this machine's agent, its nginx and the registry; Docker and the containers keep
    running."""
    registry.stop_registry(registry_dir(settings))
    if launch.pid_file.exists():
        netns.stop_process(int(launch.pid_file.read_text()), "dockyard.agent.main")
        launch.pid_file.unlink()
    Nginx(NginxLayout(launch.state_dir / "nginx", launch.nginx_http_port)).stop()
