"""Polling agents updates the inventory: real database, real agent app, real client."""

from __future__ import annotations

import httpx

from dockyard import __version__
from dockyard.agent.client import NodeAgentClient
from dockyard.core.fleet import poll_fleet
from dockyard.core.platform import Platform
from dockyard.core.servers import list_servers, register_server
from dockyard.models.enums import Role, ServerStatus
from dockyard.models.schemas import ServerPublic
from tests.agent.conftest import SECRET, free_port
from tests.conftest import Account


async def test_polling_records_status_and_agent_version(
    platform: Platform, owner: Account, agent_transport: httpx.ASGITransport
) -> None:
    for name in ("healthy", "silent", "stranger"):
        await register_server(platform, owner.workspace_id, name=name, provider="cluster")
    closed = f"http://127.0.0.1:{free_port()}"

    def client_for(server: ServerPublic) -> NodeAgentClient:
        if server.name == "silent":
            return NodeAgentClient(closed, SECRET, timeout=2)
        secret = SECRET if server.name == "healthy" else "not-the-workspace-secret"
        return NodeAgentClient("http://agent.test", secret, transport=agent_transport)

    observations = await poll_fleet(platform, client_for)
    assert len(observations) == 3
    servers = {s.name: s for s in await list_servers(platform, owner.actor(Role.OWNER))}
    assert (servers["healthy"].status, servers["healthy"].agent_version) == (
        ServerStatus.ACTIVE, __version__)
    assert (servers["silent"].status, servers["silent"].agent_version) == (
        ServerStatus.UNREACHABLE, None)
    assert servers["stranger"].status == ServerStatus.UNREACHABLE
