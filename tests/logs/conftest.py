"""Fixtures of the log tests: the machine's real Docker, a real agent app on it (over ASGI,
signed with the workspace's secret), and the server row it stands for."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import auth
from dockyard.agent import commands as cmd
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ContainerSpec, ImageRef, RestartPolicy
from dockyard.agent.runtime import DockerRuntime, EngineError
from dockyard.agent.settings import AgentSettings
from dockyard.core import agents
from dockyard.core.platform import Platform
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server
from tests.conftest import Account

DOCKER = "unix:///var/run/docker.sock"
IMAGE = ImageRef(repository="dockyard/python", tag="bookworm")
PRINTER = ("import sys\nfor i in range(3):\n    print('out', i, flush=True)\n"
           "print('err line', file=sys.stderr, flush=True)\n")
P = "/api/v1/projects"
ClientOf = Callable[[ServerPublic], NodeAgentClient]


@pytest.fixture
async def runtime() -> AsyncIterator[DockerRuntime]:
    docker = DockerRuntime(DOCKER)
    names: list[str] = []
    docker.started = names  # type: ignore[attr-defined]
    yield docker
    for name in names:
        with contextlib.suppress(EngineError):  # a test may have removed it already
            await docker.run(cmd.remove_container(name))
    docker.close()


async def run_printer(runtime: DockerRuntime, script: str = PRINTER, *, site: str = "shop-web",
                      labels: dict[str, str] | None = None) -> str:
    """A container that prints and exits (removed when the test ends)."""
    name = f"dy-logtest-{uuid.uuid4().hex[:8]}"
    runtime.started.append(name)  # type: ignore[attr-defined]
    spec = ContainerSpec(name=name, service=site, image=IMAGE, restart=RestartPolicy.NO,
                         command=["python3", "-c", script],
                         labels={"dockyard.deployment": "dep1", **(labels or {})})
    await runtime.run_all(cmd.run_container(spec, runtime.container_logs))
    await runtime.run(cmd.wait_container(name))
    return name


@pytest.fixture
async def shop(client: httpx.AsyncClient, owner: Account) -> Account:
    """The owner, with project shop and its service web."""
    for path, body in ((P, {"name": "shop"}), (f"{P}/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        assert answer.status_code == 201, answer.text
    return owner


async def add_server(platform: Platform, workspace_id: str, name: str = "node-1"
                     ) -> ServerPublic:
    async def tx(s: AsyncSession) -> ServerPublic:
        server = Server(workspace_id=workspace_id, provider="manual", name=name, ip="10.0.0.9")
        s.add(server)
        await s.flush()
        return ServerPublic.model_validate(server)

    return await platform.db.write(tx)


@pytest.fixture
async def client_of(platform: Platform, shop: Account, tmp_path: Path) -> ClientOf:
    """Clients of one real agent (real Docker) holding the workspace's key, whatever the server."""
    secret = await agents.secret_for(platform, shop.workspace_id)
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=DOCKER)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(secret))
    transport = httpx.ASGITransport(app=create_app(settings))

    def connect(server: ServerPublic) -> NodeAgentClient:
        return NodeAgentClient("http://agent.test", secret, transport=transport)

    return connect
