"""In-process deploy fixtures: three real agent apps (real nginx, fake Docker) reached over
ASGI, a workspace whose servers they are, and deploy runners that connect to them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.firewall import Firewall
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.settings import AgentSettings
from dockyard.agent.state import StateFile
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.deploy.run import Connect
from dockyard.deploy.runner import DeployRunner
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server
from dockyard.providers import netns
from tests.agent.conftest import free_port, require_nginx, stop_and_wait
from tests.deploy.fake_docker import FakeDocker
from tests.real_agent import firewall_namespace

SECRET = "in-process-agent-secret"
HOST = "web.shop.localhost"
NODES = ("node1", "node2", "node3")


class Reachable(httpx.AsyncBaseTransport):
    """The network between the control plane and an agent: `away` refuses connections (the
    agent is restarting); `drop_answers` lets that many requests reach the agent and then
    breaks the connection before their answer (the agent died while answering)."""

    def __init__(self, app: httpx.ASGITransport) -> None:
        self.app, self.away, self.drop_answers = app, False, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.away:
            raise httpx.ConnectError("connection refused (the agent is restarting)")
        answer = await self.app.handle_async_request(request)
        if self.drop_answers:
            self.drop_answers -= 1
            await answer.aclose()
            raise httpx.RemoteProtocolError("the agent went away while answering")
        return answer


@dataclass
class AgentNode:
    name: str
    docker: FakeDocker
    nginx: Nginx
    node: Node
    transport: httpx.ASGITransport
    network: Reachable = field(init=False)

    def __post_init__(self) -> None:
        self.network = Reachable(self.transport)

    async def serves(self, host: str = HOST) -> str:
        """What the node's nginx answers for `host` (the release, or an nginx error)."""
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            answer = await http.get(f"http://127.0.0.1:{self.nginx.layout.http_port}/",
                                    headers={"Host": host})
        return answer.text if answer.status_code == 200 else f"HTTP {answer.status_code}"

    def upstream_ports(self, site: str = "shop-web") -> set[int]:
        found = self.node.state.sites.get(site)
        return {u.port for u in found.upstreams} if found else set()


def agent_node(name: str, root: Path, namespace: str) -> AgentNode:
    """An agent whose firewall rules go into `namespace` (not this host's firewall)."""
    state_dir = root / name
    settings = AgentSettings(state_dir=state_dir, docker_host="unix:///nonexistent.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    docker = FakeDocker()
    nginx = Nginx(NginxLayout(state_dir / "nginx", http_port=free_port(),
                              https_port=free_port()))
    nginx.prepare()
    node = Node(state_dir=state_dir, certs_dir=state_dir / "certs", runtime=docker,
                nginx=nginx, state_file=StateFile(state_dir / "desired-state.json"),
                firewall=Firewall([*netns.in_netns(namespace), "iptables"]))
    return AgentNode(name, docker, nginx, node,
                     httpx.ASGITransport(app=create_app(settings, node)))


@pytest.fixture
def nodes() -> Iterator[dict[str, AgentNode]]:
    """Three agents, each with its own nginx pair; everything stopped afterwards."""
    require_nginx()
    root = Path(tempfile.mkdtemp(prefix="dy-dep-", dir="/var/tmp"))
    root.chmod(0o755)
    made: dict[str, AgentNode] = {}
    try:
        with firewall_namespace("dydep") as namespace:
            for name in NODES:
                made[name] = agent_node(name, root, namespace)
            yield made
    finally:
        for agent in made.values():
            agent.docker.close()
            stop_and_wait(agent.nginx)
            shutil.rmtree(agent.nginx.layout.runtime, ignore_errors=True)  # sockets, names
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def shop(client: httpx.AsyncClient, owner: Any, platform: Platform,
               nodes: dict[str, AgentNode]) -> Any:
    """The owner, with project shop, its service web, and the three nodes as servers."""
    for path, body in (("/api/v1/projects", {"name": "shop"}),
                       ("/api/v1/projects/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        assert answer.status_code == 201, answer.text
    for name in nodes:
        server = await register_server(platform, owner.workspace_id, name=name,
                                       provider="manual", ip="127.0.0.1", agent_port=8421,
                                       agent_insecure_http=True)

        async def activate(s: Any, server_id: str = server.id) -> None:
            await s.execute(update(Server).where(Server.id == server_id)
                            .values(status=ServerStatus.ACTIVE))

        await platform.db.write(activate)
    return owner


@pytest.fixture
async def make_runner(platform: Platform, nodes: dict[str, AgentNode]
                      ) -> AsyncIterator[Callable[..., DeployRunner]]:
    """Runners (each a control-plane process) whose clients reach the agents over ASGI."""
    made: list[DeployRunner] = []

    async def connect(server: ServerPublic) -> NodeAgentClient:
        return NodeAgentClient(f"http://{server.name}.test", SECRET,
                               transport=nodes[server.name].network)

    def make(connect_with: Connect = connect, **settings: Any) -> DeployRunner:
        made.append(DeployRunner(platform.db, platform.settings.model_copy(update=settings),
                                 platform.box, connect_with))
        return made[-1]

    yield make
    for runner in made:
        await runner.shutdown(0)
