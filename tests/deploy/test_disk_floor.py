"""The disk floor on a small real file system: node2's Docker data root is an 8 MiB tmpfs
the test fills. The agents are the real agent apps (real nginx, fake Docker whose images
may hold a file on that tmpfs, reached over ASGI), the runner and the database real. A
server under the floor is cleaned by its agent first: when that frees enough, the deploy goes
through; when what fills it is not Docker's to remove, the deploy fails before it pulls,
builds or starts anything, saying which server, how much is free and what to do; the live
release keeps answering; with the space freed the same deploy goes through."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from dockyard.agent.disk_guard import DiskGuard
from dockyard.core import deployments
from dockyard.core.platform import Platform
from dockyard.deploy.disk_floor import Floor, under_floor
from dockyard.models.app_metrics import FileSystemUsage
from dockyard.models.deploys import RollbackRequest
from dockyard.models.enums import Role
from tests import sqlite_only
from tests.deploy.conftest import AgentNode
from tests.deploy.test_engine import (
    MakeRunner,
    Nodes,
    everywhere,
    live_release,
    outcome,
    running,
    serving,
    start,
)

database_url = sqlite_only.database_url  # nothing here depends on the database kind

MIB = 1024 * 1024
OLD_APP = "registry.test/shop-old"  # an app that ran on node2 before, whose images are old
FLOOR = {"disk_floor_free_fraction": 0.05, "disk_floor_free_bytes": 2 * MIB}


@pytest.fixture(name="small_disk")
def small_disk_fixture() -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards."""
    mount = Path(tempfile.mkdtemp(prefix="dy-disk-", dir="/var/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
        mount.rmdir()


def fill(mount: Path, leave: int) -> Path:
    """A file taking all but about `leave` bytes of the file system."""
    filler = mount / "filler"
    with filler.open("wb") as out:
        while (free := _free(mount)) > leave:
            out.write(b"\0" * min(MIB, free - leave))
            out.flush()
    return filler


def _free(mount: Path) -> int:
    found = subprocess.run(["df", "--output=avail", "-B1", str(mount)], check=True,
                           capture_output=True, text=True)
    return int(found.stdout.split()[-1])


async def test_a_deploy_to_a_server_under_the_floor_is_refused_and_nothing_changes(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        small_disk: Path) -> None:
    nodes["node2"].docker.root = str(small_disk)
    runner = make_runner(**FLOOR)
    first = await live_release(platform, runner, shop)
    filler = fill(small_disk, leave=MIB)
    sites = {name: node.node.state.model_dump() for name, node in nodes.items()}
    containers = {name: set(node.docker.containers) for name, node in nodes.items()}
    pulls = {name: node.docker.calls.count("pull") for name, node in nodes.items()}

    refused = await outcome(platform, runner, shop, await start(platform, runner, shop))

    assert refused.status == "failed"
    assert refused.error == (
        f"server node2 is nearly out of disk: 1.0 MB free of 8.4 MB on {small_disk} (docker), "
        "under the floor of 2.1 MB even after its agent cleaned it (freeing 0.0 MB); nothing "
        "was changed. Free space on node2 (`docker system df` there shows what Docker keeps; "
        "its agent removed old release images, stopped containers, dangling images and old "
        "build cache already: what is left is not Dockyard's to remove) or grow its disk, "
        "then deploy again")
    assert [x.trigger for x in guard(nodes["node2"]).cleanups] == ["request"]
    assert [x.trigger for x in guard(nodes["node1"]).cleanups] == []  # over the floor
    assert {name: node.docker.calls.count("pull") for name, node in nodes.items()} == pulls
    assert {name: set(node.docker.containers) for name, node in nodes.items()} == containers
    assert {name: node.node.state.model_dump() for name, node in nodes.items()} == sites
    assert running(nodes) == everywhere(nodes, {first})
    assert await serving(nodes) == everywhere(nodes, first)

    filler.unlink()
    second = await start(platform, runner, shop)
    assert (await outcome(platform, runner, shop, second)).status == "succeeded"
    assert await serving(nodes) == everywhere(nodes, second[:8])


async def test_a_server_under_the_floor_is_cleaned_first_and_the_deploy_goes_through(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        small_disk: Path) -> None:
    docker = nodes["node2"].docker
    docker.root = str(small_disk)
    runner = make_runner(**FLOOR)
    await live_release(platform, runner, shop)
    old = [f"{OLD_APP}:deploy_0000000{n}" for n in range(5)]
    for reference in old:
        docker.images.add(reference)
        docker.layers[reference] = small_disk / reference.replace("/", "_")
        docker.layers[reference].write_bytes(b"\0" * MIB)
    fill(small_disk, leave=MIB)

    second = await start(platform, runner, shop)

    assert (await outcome(platform, runner, shop, second)).status == "succeeded"
    assert await serving(nodes) == everywhere(nodes, second[:8])
    [cleaned] = guard(nodes["node2"]).cleanups
    assert (cleaned.trigger, cleaned.release_tags_removed) == ("request", old[1::-1])
    assert cleaned.bytes_freed == 2 * MIB
    assert sorted(x for x in docker.images if x.startswith(OLD_APP)) == old[2:]


def guard(node: AgentNode) -> DiskGuard:
    app = node.transport.app
    assert isinstance(app, Starlette)
    found: DiskGuard = app.state.disk_guard
    return found


async def test_a_rollback_under_the_floor_goes_through(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        small_disk: Path) -> None:
    nodes["node2"].docker.root = str(small_disk)
    runner = make_runner(**FLOOR)
    first = await live_release(platform, runner, shop)
    await live_release(platform, runner, shop)
    fill(small_disk, leave=MIB)
    back = await deployments.start_rollback(platform, runner, shop.actor(Role.OWNER),
                                            RollbackRequest(project="shop", service="web",
                                                            release=first))
    assert (await outcome(platform, runner, shop, back)).status == "succeeded"
    assert await serving(nodes) == everywhere(nodes, back[:8])


async def test_the_agent_reports_each_file_system_it_writes_to_read_now(
        nodes: Nodes, small_disk: Path) -> None:
    node = nodes["node1"]
    node.docker.root = str(small_disk)
    before = await node.node.disks.read()
    assert [(x.roles, x.path, x.total_bytes) for x in before] == [
        (["agent"], str(node.node.state_dir), before[0].total_bytes),
        (["docker"], str(small_disk), 8 * MIB)]
    assert before[1].free_bytes == 8 * MIB
    fill(small_disk, leave=3 * MIB)
    after = await node.node.disks.read()
    assert after[1].free_bytes == 3 * MIB


async def test_one_file_system_holding_both_is_reported_once(nodes: Nodes) -> None:
    node = nodes["node1"]
    node.docker.root = str(node.node.state_dir / "docker")
    (node.node.state_dir / "docker").mkdir()
    found = await node.node.disks.read()
    assert [(x.roles, x.path) for x in found] == [(["agent", "docker"],
                                                    str(node.node.state_dir))]


@pytest.mark.parametrize(("total", "free", "under"), [
    (100 * 10**9, 4 * 10**9, True),  # 5 % of 100 GB is 5 GB: more than 2 GB
    (100 * 10**9, 5 * 10**9, False),
    (10 * 10**9, 1999 * 10**6, True),  # 5 % of 10 GB is 0.5 GB: 2 GB is the floor
    (10 * 10**9, 2 * 10**9, False),
])
def test_the_floor_is_the_larger_of_its_fraction_and_its_bytes(
        total: int, free: int, under: bool) -> None:
    found = FileSystemUsage(roles=["docker"], path="/", total_bytes=total, free_bytes=free)
    floor = Floor(fraction=0.05, bytes=2 * 10**9)
    assert (under_floor([found], floor) is found) is under
