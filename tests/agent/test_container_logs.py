"""Every container the agent starts has a log limit: a chatty one on the machine's real Docker
keeps at most `container_log_keep` json-file files of `container_log_max_bytes`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ContainerSpec, ImageRef
from dockyard.agent.settings import AgentSettings
from tests.agent.conftest import SECRET

pytestmark = pytest.mark.slow
SERVICE = "chatty-test"
MAX_BYTES, KEEP = 4096, 2
LINES = 5000  # of 100 bytes, some 160 in Docker's json-file: 800 KB in all


@pytest.fixture
def docker_api(docker_host: str) -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=docker_host)
    yield api
    for found in api.containers(all=True, filters={"label": f"dockyard.service={SERVICE}"}):
        api.remove_container(found["Id"], force=True)
    api.close()


@pytest.fixture
async def agent(tmp_path: Path, docker_host: str, docker_api: docker.APIClient
                ) -> AsyncIterator[NodeAgentClient]:
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=docker_host,
                             container_log_max_bytes=MAX_BYTES, container_log_keep=KEEP)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    transport = httpx.ASGITransport(app=create_app(settings))
    async with NodeAgentClient("http://agent.test", SECRET, transport=transport) as client:
        yield client


def exited(api: docker.APIClient, name: str, within: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + within
    while (inspected := api.inspect_container(name))["State"]["Status"] != "exited":
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not exit within {within:.0f} s")
        time.sleep(0.05)
    return dict(inspected)


async def test_a_chatty_container_keeps_at_most_its_log_limit(
        agent: NodeAgentClient, python_image: ImageRef, docker_api: docker.APIClient) -> None:
    code = f"for n in range({LINES}): print(f'{{n:08d}}'.ljust(99, '.'), flush=True)"
    await agent.run_container(ContainerSpec.model_validate({
        "name": "chatty-test-1", "service": SERVICE, "image": python_image.model_dump(),
        "command": ["python3", "-c", code], "restart": "no"}))
    inspected = exited(docker_api, "chatty-test-1")
    assert inspected["HostConfig"]["LogConfig"] == {  # type: ignore[index]
        "Type": "json-file", "Config": {"max-size": str(MAX_BYTES), "max-file": str(KEEP)}}
    log_path = Path(str(inspected["LogPath"]))
    files = sorted(log_path.parent.glob(f"{log_path.name}*"))
    assert [f.name for f in files] == [log_path.name, f"{log_path.name}.1"]
    for file in files:
        longest = max(len(line) for line in file.read_bytes().splitlines(keepends=True))
        assert file.stat().st_size <= MAX_BYTES + longest  # Docker rotates after the line
    last = docker_api.logs("chatty-test-1", tail=1).decode()
    assert last == f"{LINES - 1:08d}".ljust(99, ".") + "\n"  # the newest lines are kept
