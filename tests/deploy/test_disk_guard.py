"""The agent cleans its own disk, no control plane asking: the real agent app, lifespan and
all (its nginx, its disk guard's loop), on a Docker daemon of the test's own whose data root
is a 512 MiB tmpfs the test fills past the agent's threshold. The agent removes the old
release images (distinct 4 MiB layers), the stopped container it made, keeps the live one,
and keeps a record; the control plane's metrics job turns that record into exactly one server
event however often it runs. `POST .../prune` (the API of `dockyard servers prune`) cleans
whatever the threshold. The daemon has its own bridge (no iptables): `--bridge=none` would
not do, as such a daemon deletes the host's docker0."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
from docker.errors import DockerException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from dockyard.agent import auth
from dockyard.agent import commands as cmd
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.disk_guard import DiskGuard
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.settings import AgentSettings
from dockyard.core import agents, app_metrics
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.models.disk import DiskCleanup
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import ServerEvent
from dockyard.providers import images
from dockyard.providers.images import Tarball
from tests import sqlite_only
from tests.agent.conftest import (  # noqa: F401  (fixtures)
    agent,
    agent_settings,
    agent_transport,
    base_tarball,
    nginx_root,
    stop_and_wait,
)
from tests.conftest import Account
from tests.deploy.test_disk_floor import MIB, fill
from tests.deploy.test_engine import until
from tests.live import serving, wait_until
from tests.logs.conftest import add_server, shop  # noqa: F401  (fixture)
from tests.ports import free_port

database_url = sqlite_only.database_url  # the events' dedup is tested on both kinds elsewhere

REPOSITORY = "dockyard/shop-web"
API_VERSION = "1.41"
BRIDGE, BRIDGE_ADDRESS = "dyguard0", "10.239.254.1/24"
LAYER = 4 * MIB


@dataclass(frozen=True)
class OwnDocker:
    url: str
    disk: Path  # its data root's file system, a tmpfs

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version=API_VERSION)


def _answers(client: docker.DockerClient) -> bool:
    with contextlib.suppress(DockerException, OSError):  # (requests errors are OSErrors)
        return bool(client.ping())
    return False


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    mount = Path(tempfile.mkdtemp(prefix="dy-guard-", dir="/var/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
        mount.rmdir()


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


@contextlib.contextmanager
def own_daemon(disk: Path) -> Iterator[OwnDocker]:
    home = Path(tempfile.mkdtemp(prefix="dy-dockerd-", dir="/tmp"))
    url = f"unix://{home}/docker.sock"
    daemon = subprocess.Popen(
        ["dockerd", "--host", url, "--data-root", str(disk / "root"), "--exec-root",
         str(home / "exec"), "--pidfile", str(home / "docker.pid"), "--iptables=false",
         "--ip6tables=false", f"--bridge={BRIDGE}"],
        stdout=subprocess.DEVNULL, stderr=(home / "log").open("w"))
    own = OwnDocker(url, disk)
    try:
        with contextlib.closing(own.client()) as client:
            wait_until(lambda: _answers(client), "the test's dockerd answers")
        yield own
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        subprocess.run(["rm", "-rf", str(home)], check=False)


@pytest.fixture(scope="module")
def own_docker() -> Iterator[OwnDocker]:
    """A second Docker daemon whose data root is a 512 MiB tmpfs."""
    with tmpfs("512m") as disk, own_bridge(), own_daemon(disk) as own:
        yield own


@pytest.fixture(scope="module")
def base_image(own_docker: OwnDocker, base_tarball: Tarball) -> str:  # noqa: F811
    """The offline base image (Debian + python3), in the test's own daemon."""
    runtime = DockerRuntime(own_docker.url)
    try:
        return images.import_tarball(runtime, base_tarball).reference
    finally:
        runtime.close()


def layer_tar(size: int) -> bytes:
    """A root file system of one file of `size` random bytes: a layer of its own."""
    data, out = os.urandom(size), io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        entry = tarfile.TarInfo("layer")
        entry.size = size
        tar.addfile(entry, io.BytesIO(data))
    return out.getvalue()


def release_images(own: OwnDocker, count: int) -> list[str]:
    """`count` release images of one app, oldest first, each with a layer of its own."""
    with contextlib.closing(own.client()) as client:
        for n in range(count):
            client.api.import_image_from_data(layer_tar(LAYER), repository=REPOSITORY,
                                              tag=f"{cmd.DEPLOY_TAG_PREFIX}{n}")
    return [f"{REPOSITORY}:{cmd.DEPLOY_TAG_PREFIX}{n}" for n in range(count)]


def containers(own: OwnDocker, image: str, stopped: list[str], live: str) -> None:
    """Containers of the app made as the agent makes them (its labels)."""
    labels = cmd.owned_labels("shop-web")
    with contextlib.closing(own.client()) as client:
        for name in stopped:
            client.containers.run(image, ["true"], name=name, labels=labels,
                                  network_mode="none")
        client.containers.run(image, ["sleep", "600"], name=live, labels=labels,
                              network_mode="none", detach=True)


def left(own: OwnDocker) -> tuple[list[str], list[str]]:
    """The app's release tags and the containers there are."""
    with contextlib.closing(own.client()) as client:
        tags = sorted(t for i in client.images.list(REPOSITORY) for t in i.tags
                      if t.startswith(REPOSITORY))
        return tags, sorted(str(c.name) for c in client.containers.list(all=True))


@pytest.fixture
def cleared(own_docker: OwnDocker) -> Iterator[OwnDocker]:
    """The daemon, with what a test made there removed afterwards."""
    yield own_docker
    with contextlib.closing(own_docker.client()) as client:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for image in client.images.list(REPOSITORY):
            for tag in image.tags:
                client.images.remove(tag)
    (own_docker.disk / "filler").unlink(missing_ok=True)


def guard_settings(state_dir: Path, own: OwnDocker, secret: str) -> AgentSettings:
    settings = AgentSettings(state_dir=state_dir, docker_host=own.url,
                             nginx_http_port=free_port(), nginx_https_port=free_port(),
                             disk_check_seconds=0.05, disk_cleanup_keep_releases=2)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(secret))
    return settings


@contextlib.asynccontextmanager
async def running_agent(settings: AgentSettings) -> AsyncIterator[Starlette]:
    """The agent app, lifespan and all; its nginx stopped afterwards."""
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        pair = Nginx(NginxLayout(settings.nginx_dir, settings.nginx_http_port,
                                 settings.nginx_https_port))
        stop_and_wait(pair)
        shutil.rmtree(pair.layout.runtime, ignore_errors=True)  # sockets, routes, keys in /run


async def disk_events(platform: Platform, server_id: str) -> list[str]:
    async def tx(s: AsyncSession) -> list[str]:
        return list(await s.scalars(select(ServerEvent.message).where(
            ServerEvent.server_id == server_id, ServerEvent.kind == "disk")))

    return await platform.db.read(tx)


async def test_the_agent_cleans_its_full_disk_by_itself_and_one_event_records_it(
        platform: Platform, shop: Account, cleared: OwnDocker, base_image: str,  # noqa: F811
        nginx_root: Path) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    secret = await agents.secret_for(platform, shop.workspace_id)
    old = release_images(cleared, 5)
    containers(cleared, base_image, ["shop-web-old"], "shop-web-live")
    async with running_agent(guard_settings(nginx_root.parent, cleared, secret)) as app:
        guard: DiskGuard = app.state.disk_guard
        transport = httpx.ASGITransport(app=app)

        def client_of(_: ServerPublic) -> NodeAgentClient:
            return NodeAgentClient("http://agent.test", secret, transport=transport)

        async with client_of(server) as agent:
            assert await agent.disk_cleanups() == []  # some 40 % used: under its threshold
            fill(cleared.disk, leave=40 * MIB)
            await until(lambda: bool(guard.cleanups), "the agent cleaning its disk", within=60)
            [cleaned] = await agent.disk_cleanups()

        assert (cleaned.trigger, cleaned.release_tags_removed) == ("threshold", old[2::-1])
        assert cleaned.containers_removed == ["shop-web-old"]
        assert cleaned.used_before >= 0.85
        assert cleaned.bytes_freed >= 3 * LAYER
        assert left(cleared) == (old[3:], ["shop-web-live"])
        containers(cleared, base_image, ["shop-web-later"], "shop-web-live-2")
        assert await guard.check() is None  # still full, but it cleaned within the pause
        for _ in range(2):
            assert (await app_metrics.collect(platform, client_of)).hosts == 1
    assert await disk_events(platform, server.id) == [cleaned.summary()]
    assert "shop-web-later" in left(cleared)[1]


async def test_a_server_is_pruned_on_request_through_the_api(
        platform: Platform, shop: Account, client: httpx.AsyncClient,  # noqa: F811
        cleared: OwnDocker, tmp_path: Path) -> None:
    secret = await agents.secret_for(platform, shop.workspace_id)
    old = release_images(cleared, 4)
    settings = guard_settings(tmp_path / "agent", cleared, secret)
    with serving(create_app(settings)) as url:  # no lifespan: its guard is not running
        server = await register_server(platform, shop.workspace_id, name="node-1",
                                       provider="manual", ip="127.0.0.1",
                                       agent_port=int(url.rsplit(":", 1)[1]),
                                       agent_insecure_http=True)
        answer = await client.post(f"/api/v1/infra/servers/{server.id}/prune",
                                   headers=shop.headers)
        assert answer.status_code == 200, answer.text
        cleaned = DiskCleanup.model_validate(answer.json())
        assert (cleaned.trigger, cleaned.release_tags_removed) == ("request", old[1::-1])
        assert cleaned.bytes_freed >= 2 * LAYER
        assert left(cleared)[0] == old[2:]

        def client_of(_: ServerPublic) -> NodeAgentClient:
            return NodeAgentClient(url, secret)

        await app_metrics.collect(platform, client_of)  # seen again: not recorded twice
    events = (await client.get(f"/api/v1/infra/servers/{server.id}/events",
                               headers=shop.headers)).json()
    assert [(x["kind"], x["message"]) for x in events] == [("disk", cleaned.summary())]


async def test_cleaning_with_docker_away_is_a_503_and_records_nothing(
        agent: NodeAgentClient) -> None:  # noqa: F811
    with pytest.raises(AgentError) as raised:
        await agent.clean_disk()
    assert raised.value.status_code == 503
    assert "docker engine unreachable" in raised.value.detail
    assert await agent.disk_cleanups() == []
