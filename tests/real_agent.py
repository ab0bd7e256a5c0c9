"""A real agent app on this machine's Docker, reached over ASGI, whose firewall rules go into
a network namespace of its own (this host's firewall stays as it is); the API whose deploy
runner reaches it; and a project whose one server it is."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from sqlalchemy import update

from dockyard.agent import auth, process
from dockyard.agent.app import build_node
from dockyard.agent.app import create_app as create_agent_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.firewall import Firewall
from dockyard.agent.settings import AgentSettings
from dockyard.api.app import create_app
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.settings import Settings
from dockyard.models.enums import ServerStatus
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server
from dockyard.providers import images, local, netns
from tests.agent.conftest import SECRET, require_the_real_stack

# On SQLite only: a test about what Docker runs, whose database code other tests run on
# both databases (it keeps the suite's time within bounds).
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@contextmanager
def firewall_namespace(prefix: str) -> Iterator[str]:
    name = f"{prefix}-{os.getpid()}"
    process.check(netns.add_namespace(name))
    try:
        yield name
    finally:
        process.check(netns.delete_namespace(name))


def agent_on_this_docker(state_dir: Path, docker_host: str, namespace: str
                         ) -> httpx.ASGITransport:
    settings = AgentSettings(state_dir=state_dir, docker_host=docker_host)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    node = build_node(settings)
    node.firewall = Firewall([*netns.in_netns(namespace), "iptables"])
    return httpx.ASGITransport(app=create_agent_app(settings, node))


def runner_reaching(platform: Platform, settings: Settings, agent: httpx.ASGITransport
                    ) -> DeployRunner:
    """A deploy runner whose every server is the agent behind `agent`."""
    async def connect(server: ServerPublic) -> NodeAgentClient:
        return NodeAgentClient("http://agent.test", SECRET, transport=agent, timeout=600)

    return DeployRunner(platform.db, settings, platform.box, connect)


@asynccontextmanager
async def api_using(settings: Settings, platform: Platform, runner: DeployRunner
                    ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, platform)
    app.state.deploys = runner
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://dockyard.test", timeout=600) as http:
        yield http


async def project_on_one_server(api: httpx.AsyncClient, owner: Any, platform: Platform,
                                project: str) -> Any:
    """`project` of the owner's workspace, whose one active server `node1` is the agent."""
    answer = await api.post("/api/v1/projects", json={"name": project}, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    server = await register_server(platform, owner.workspace_id, name="node1",
                                   provider="manual", ip="127.0.0.1", agent_port=8421,
                                   agent_insecure_http=True)
    await platform.db.write(lambda s: s.execute(
        update(Server).where(Server.id == server.id).values(status=ServerStatus.ACTIVE)))
    return owner


def docker_with_stateful_images() -> str:
    """This machine's Docker, with the offline Postgres and Redis builds cached."""
    require_the_real_stack()
    host = local.ensure_local_docker(images.ImageSettings().cache_dir)
    for recipe in ("postgres", "redis"):
        images.bootstrap_tarball(images.RECIPES[recipe], images.ImageSettings())
    return host


def remove_leftovers(docker_host: str, prefixes: tuple[str, ...]) -> None:
    """The managed containers of services, and the volumes, whose names start so."""
    api = docker.APIClient(base_url=docker_host)
    for found in api.containers(all=True, filters={"label": "dockyard.managed=true"}):
        if found["Labels"].get("dockyard.service", "").startswith(prefixes):
            api.remove_container(found["Id"], force=True)
    for volume in api.volumes().get("Volumes") or []:
        if volume["Name"].startswith(prefixes):
            api.remove_volume(volume["Name"], force=True)
    api.close()
