"""The dangling-image age of the per-deploy image prune is the control plane's build cache age
(DOCKYARD_BUILD_CACHE_DAYS), sent with each prune; an agent asked without one keeps a week.
The agent app over ASGI; the engine is the deploy tests' fake Docker, its calls recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.commands import EngineCall
from dockyard.agent.models import PruneRequest
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.settings import AgentSettings
from dockyard.agent.state import StateFile
from tests.agent.conftest import free_port
from tests.deploy.fake_docker import FakeDocker

SECRET = "prune-age-agent-secret"


@dataclass
class RecordingDocker(FakeDocker):
    engine_calls: list[EngineCall] = field(default_factory=list)

    async def run(self, call: EngineCall) -> Any:
        self.engine_calls.append(call)
        return await super().run(call)


@pytest.fixture
def docker() -> RecordingDocker:
    return RecordingDocker(images={"registry.test:5000/shop/web:deploy_00000001"})


@pytest.fixture
def agent(tmp_path: Path, docker: RecordingDocker) -> NodeAgentClient:
    settings = AgentSettings(state_dir=tmp_path, docker_host="unix:///nonexistent.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    nginx = Nginx(NginxLayout(tmp_path / "nginx", http_port=free_port(),
                              https_port=free_port()))
    node = Node(state_dir=tmp_path, certs_dir=tmp_path / "certs", runtime=docker, nginx=nginx,
                state_file=StateFile(tmp_path / "desired-state.json"))
    transport = httpx.ASGITransport(app=create_app(settings, node))
    return NodeAgentClient("http://agent.test", SECRET, transport=transport)


def dangling_pruned(docker: RecordingDocker) -> list[Any]:
    return [c.kwargs["filters"] for c in docker.engine_calls if c.method == "prune_images"]


async def test_the_prune_removes_dangling_images_of_the_age_it_is_sent(
        agent: NodeAgentClient, docker: RecordingDocker) -> None:
    async with agent:
        await agent.prune(1, "registry.test:5000/shop/web", retain=[],
                          dangling_max_age_seconds=43200)
    assert dangling_pruned(docker) == [{"dangling": True, "until": "43200s"}]
    assert docker.images == set()  # the release image outside `retain` went too


async def test_without_an_age_the_agent_keeps_a_week(agent: NodeAgentClient,
                                                     docker: RecordingDocker) -> None:
    async with agent:
        await agent.prune(keep=5)
    assert dangling_pruned(docker) == [{"dangling": True, "until": "604800s"}]


def test_the_age_is_checked_at_the_edge() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        PruneRequest(keep=1, dangling_max_age_seconds=-1)
    assert PruneRequest(keep=1).dangling_max_age_seconds == 7 * 24 * 3600
