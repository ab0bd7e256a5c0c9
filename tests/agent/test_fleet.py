"""Polling agents updates the inventory: real database, real agent app, real client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.agent.release import code_version
from dockyard.agent.settings import AgentSettings
from dockyard.core.fleet import poll_fleet
from dockyard.core.platform import Platform
from dockyard.core.servers import list_servers, register_server
from dockyard.models.enums import Role, ServerStatus
from dockyard.models.schemas import ServerPublic
from tests.agent.conftest import SECRET, free_port, stop_and_wait
from tests.conftest import Account


@pytest.fixture
def serving_agent(nginx_root: Path) -> Iterator[httpx.ASGITransport]:
    """An agent app whose node's nginx runs (on a free port): its data path serves."""
    settings = AgentSettings(state_dir=nginx_root.parent, nginx_http_port=free_port(),
                             nginx_https_port=free_port(),
                             docker_host=f"unix://{nginx_root.parent}/no-docker.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    pair = Nginx(NginxLayout(settings.nginx_dir, settings.nginx_http_port,
                             settings.nginx_https_port))
    pair.prepare()
    pair.reload()
    yield httpx.ASGITransport(app=create_app(settings))
    stop_and_wait(pair)


async def test_polling_records_status_and_agent_version(
    platform: Platform, owner: Account, agent_transport: httpx.ASGITransport,
    serving_agent: httpx.ASGITransport
) -> None:
    for name in ("healthy", "silent", "stranger", "broken"):
        await register_server(platform, owner.workspace_id, name=name, provider="cluster")
    closed = f"http://127.0.0.1:{free_port()}"

    def client_for(server: ServerPublic) -> NodeAgentClient:
        if server.name == "silent":
            return NodeAgentClient(closed, SECRET, timeout=2)
        secret = "not-the-workspace-secret" if server.name == "stranger" else SECRET
        transport = serving_agent if server.name == "healthy" else agent_transport
        return NodeAgentClient("http://agent.test", secret, transport=transport)

    observations = await poll_fleet(platform, client_for)
    assert len(observations) == 4
    servers = {s.name: s for s in await list_servers(platform, owner.actor(Role.OWNER))}
    assert (servers["healthy"].status, servers["healthy"].agent_version) == (
        ServerStatus.ACTIVE, code_version())
    assert servers["broken"].status == ServerStatus.DEGRADED  # its nginx never started
    assert servers["broken"].status_reason.startswith(
        "switch nginx not running; edge nginx not running; ")
    assert (servers["silent"].status, servers["silent"].agent_version) == (
        ServerStatus.UNREACHABLE, None)
    assert servers["stranger"].status == ServerStatus.UNREACHABLE
