"""Provider `local`: this machine's Docker (started if it is not running) and an agent on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import Site, Upstream
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.providers import local, netns
from tests.agent.conftest import cluster_root, free_port, require_the_real_stack

pytestmark = pytest.mark.slow
SECRET = "local-secret"


@pytest.fixture
def local_agent() -> Iterator[local.AgentLaunch]:
    require_the_real_stack()
    root = cluster_root("local")
    launch = local.AgentLaunch(state_dir=root / "agent", host="127.0.0.1", port=free_port(),
                               docker_host=local.ensure_local_docker(root),
                               nginx_http_port=free_port(),
                               extra_env={"DOCKYARD_AGENT_NGINX_HTTPS_PORT": str(free_port())})
    local.install_agent_key(launch, SECRET)
    pid = local.start_agent(launch)
    try:
        yield launch
    finally:
        netns.stop_process(pid, "dockyard.agent.main")
        Nginx(NginxLayout(launch.state_dir / "nginx", launch.nginx_http_port)).stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_an_agent_on_this_machine_drives_its_docker_and_nginx(
    local_agent: local.AgentLaunch,
) -> None:
    assert local_agent.url.startswith("https://")
    fingerprint = local_agent.fingerprint()
    async with NodeAgentClient(local_agent.url, SECRET, fingerprint=fingerprint) as client:
        info = await client.info()
        assert info.docker_version not in ("", "unreachable")
        await client.apply_site(Site(service="nothing", server_names=["nothing.test"],
                                     upstreams=[Upstream(host="127.0.0.1", port=free_port())]))
        assert [s.service for s in await client.sites()] == ["nothing"]
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{local_agent.nginx_http_port}/",
                                headers={"Host": "nothing.test"})
    assert answer.status_code == 502  # nginx routed it; nothing listens upstream
