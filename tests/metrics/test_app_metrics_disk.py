"""Past the disk threshold, the collect job has the real agent app remove stopped containers
and old release images, and records what it freed. The agent runs on a Docker daemon of the
test's own (its own data root, its own bridge, no iptables), so nothing of this machine's
Docker is touched: `--bridge=none` would not do, as such a daemon deletes the host's docker0."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from docker.errors import DockerException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import auth
from dockyard.agent import commands as cmd
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.settings import AgentSettings
from dockyard.core import agents, app_metrics
from dockyard.core.platform import Platform
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.tables import ServerEvent
from tests import sqlite_only
from tests.conftest import Account, make_settings
from tests.live import wait_until
from tests.logs.conftest import add_server, shop  # noqa: F401  (fixture)

database_url = sqlite_only.database_url  # nothing here depends on the database kind

IMAGE = "dockyard/base:bookworm"
REPOSITORY = "dockyard/shop-web"
API_VERSION = "1.41"
BRIDGE, BRIDGE_ADDRESS = "dydisk0", "10.239.255.1/24"


def _answers(client: docker.DockerClient) -> bool:
    with contextlib.suppress(DockerException, OSError):  # (requests errors are OSErrors)
        return bool(client.ping())
    return False


@pytest.fixture(scope="module")
def own_docker() -> Iterator[str]:
    """A second Docker daemon with this machine's base image loaded; its socket's URL."""
    home = Path(tempfile.mkdtemp(prefix="dy-dockerd-", dir="/tmp"))
    with own_bridge():
        yield from _own_daemon(home)


@contextlib.contextmanager
def own_bridge() -> Iterator[None]:
    ip = ["ip", "link"]
    subprocess.run([*ip, "add", "name", BRIDGE, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE], check=True)
        subprocess.run([*ip, "set", BRIDGE, "up"], check=True)
        yield
    finally:
        subprocess.run([*ip, "del", BRIDGE], check=False)


def _own_daemon(home: Path) -> Iterator[str]:
    url = f"unix://{home}/docker.sock"
    daemon = subprocess.Popen(
        ["dockerd", "--host", url, "--data-root", str(home / "root"), "--exec-root",
         str(home / "exec"), "--pidfile", str(home / "docker.pid"), "--iptables=false",
         "--ip6tables=false", f"--bridge={BRIDGE}"],
        stdout=subprocess.DEVNULL, stderr=(home / "log").open("w"))
    client = docker.DockerClient(base_url=url, version=API_VERSION)  # asks nothing yet
    try:
        wait_until(lambda: _answers(client), "the test's dockerd answers")
        client.images.load(b"".join(docker.from_env().images.get(IMAGE).save(named=True)))
        yield url
    finally:
        client.close()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(home)], check=False)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Any disk counts as nearly full."""
    result = make_settings(tmp_path, database_url, disk_cleanup_fraction=0.001,
                           disk_cleanup_keep_releases=2)
    ensure_key_file(result.key_file)
    return result


def fill(url: str) -> docker.DockerClient:
    """Five release tags of one app, a stopped container of it and a running one."""
    client = docker.DockerClient(base_url=url, version=API_VERSION)
    base = client.images.get(IMAGE)
    for n in range(5):
        base.tag(REPOSITORY, f"{cmd.DEPLOY_TAG_PREFIX}{n}")
    labels = cmd.owned_labels("shop-web")
    client.containers.run(IMAGE, ["true"], name="shop-web-old", labels=labels,
                          network_mode="none")
    client.containers.run(IMAGE, ["sleep", "600"], name="shop-web-live", labels=labels,
                          network_mode="none", detach=True)
    return client


async def test_a_full_disk_is_cleaned_and_the_cleaning_recorded(
        platform: Platform, shop: Account, own_docker: str, tmp_path: Path) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    secret = await agents.secret_for(platform, shop.workspace_id)
    agent_settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=own_docker)
    auth.write_key_file(agent_settings.key_file, auth.derive_agent_key(secret))
    transport = httpx.ASGITransport(app=create_app(agent_settings))
    client = fill(own_docker)
    try:
        def client_of(_: object) -> NodeAgentClient:
            return NodeAgentClient("http://agent.test", secret, transport=transport)

        assert (await app_metrics.collect(platform, client_of)).hosts == 1
        client.containers.run(IMAGE, ["true"], name="shop-web-later",
                                           labels=cmd.owned_labels("shop-web"),
                                           network_mode="none")
        assert (await app_metrics.collect(platform, client_of)).hosts == 1  # within the pause
        tags = sorted(t for i in client.images.list(REPOSITORY) for t in i.tags
                      if t.startswith(REPOSITORY))
        assert tags == [f"{REPOSITORY}:deploy_3", f"{REPOSITORY}:deploy_4"]
        names = sorted(str(c.name) for c in client.containers.list(all=True))
        assert names == ["shop-web-later", "shop-web-live"]  # cleaned once in 10 minutes
    finally:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for image in client.images.list(REPOSITORY):
            for tag in image.tags:
                if tag.startswith(REPOSITORY):
                    client.images.remove(tag)
        client.close()

    async def events(s: AsyncSession) -> list[str]:
        return list(await s.scalars(select(ServerEvent.message)
                                    .where(ServerEvent.server_id == server.id)))

    [message] = await platform.db.read(events)
    assert "removed 3 old release image tags and 1 stopped containers" in message
