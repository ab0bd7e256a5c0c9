"""Deleting a project, in process (three real agent apps, real nginx, fake Docker, the fake
Cloudflare): every app of it, its previews too, is taken off every server and the previews'
DNS records go before its rows; while a server cannot be reached or an app is being
deployed, or while it holds data, nothing is forgotten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from dockyard.core import previews, projects
from dockyard.core.platform import Platform
from dockyard.kernel.errors import Conflict, ServerFailed
from dockyard.models.enums import DeploymentStatus, Role, ServiceKind
from dockyard.models.tables import Deployment, Project, Service
from tests.deploy.test_engine import MakeRunner, live_release
from tests.fakes.cloudflare import FakeCloudflare
from tests.previews.test_previews import (
    PREVIEW_HOST,
    ZONE,
    Nodes,
    commit,
    dns_link,
    pull_request,
)
from tests.real_agent import SQLITE_ONLY


async def _names(platform: Platform) -> tuple[list[str], list[str]]:
    async def tx(s: Any) -> tuple[list[str], list[str]]:
        return (list(await s.scalars(select(Project.name))),
                list(await s.scalars(select(Service.name).order_by(Service.name))))
    return await platform.db.read(tx)


def _running(nodes: Nodes) -> set[str]:
    return {c for node in nodes.values() for c in node.docker.running()}


@SQLITE_ONLY
async def test_a_project_and_its_previews_are_taken_off_every_server(
        zoned: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, repo: Path,
        cloudflare: FakeCloudflare) -> None:
    platform, runner, owner = zoned, make_runner(), shop.actor(Role.OWNER)
    release = await live_release(platform, runner, shop)
    link = await dns_link(platform, shop, repo)
    opened = await previews.on_pull_request(platform, runner, link,
                                            pull_request(commit(repo, "one")))
    assert opened.outcome == "deployed", opened
    await runner.wait_idle()
    assert {c.rsplit("-", 1)[0] for c in _running(nodes)} == {"shop-web", "shop-web-pr-7"}
    assert [r["name"] for r in cloudflare.records(ZONE)] == [PREVIEW_HOST]
    removed = await projects.delete_project(platform, runner.connect, owner, "shop")
    assert sorted((x.server, len(x.containers)) for x in removed if x.site) == sorted(
        [(name, 1) for name in nodes] * 2)
    assert _running(nodes) == set()
    assert all(not node.node.state.sites for node in nodes.values()), release
    assert cloudflare.records(ZONE) == []
    assert await _names(platform) == ([], [])


async def test_a_project_is_kept_while_a_server_its_app_runs_on_cannot_be_reached(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner, owner = make_runner(), shop.actor(Role.OWNER)
    release = await live_release(platform, runner, shop)
    nodes["node2"].network.away = True
    with pytest.raises(ServerFailed, match=r"shop/web .* kept: server node2"):
        await projects.delete_project(platform, runner.connect, owner, "shop")
    assert await _names(platform) == (["shop"], ["web"])
    assert nodes["node2"].docker.running() == {f"shop-web-{release}": release}
    nodes["node2"].network.away = False
    await projects.delete_project(platform, runner.connect, owner, "shop")
    assert _running(nodes) == set()
    assert await _names(platform) == ([], [])


async def test_a_project_is_kept_while_one_of_its_apps_is_being_deployed(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner, owner = make_runner(), shop.actor(Role.OWNER)
    release = await live_release(platform, runner, shop)

    async def deploying(s: Any, status: DeploymentStatus) -> None:
        await s.execute(update(Deployment).values(status=status))

    await platform.db.write(lambda s: deploying(s, DeploymentStatus.RUNNING))
    with pytest.raises(Conflict, match="web is being deployed"):
        await projects.delete_project(platform, runner.connect, owner, "shop")
    assert await _names(platform) == (["shop"], ["web"])
    assert {node.docker.running().get(f"shop-web-{release}") for node in nodes.values()} == {
        release}
    await platform.db.write(lambda s: deploying(s, DeploymentStatus.SUCCEEDED))
    await projects.delete_project(platform, runner.connect, owner, "shop")
    assert _running(nodes) == set()


async def test_a_project_holding_data_is_refused_with_the_command_that_backs_it_up(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner, owner = make_runner(), shop.actor(Role.OWNER)
    await live_release(platform, runner, shop)

    async def add_db(s: Any) -> None:
        web = (await s.scalars(select(Service).where(Service.name == "web"))).one()
        s.add(Service(workspace_id=web.workspace_id, project_id=web.project_id, name="db",
                      kind=ServiceKind.POSTGRES, config={}))

    await platform.db.write(add_db)
    with pytest.raises(Conflict, match=r"holds data \(db\).*services delete db -p shop "
                       r"--confirm db"):
        await projects.delete_project(platform, runner.connect, owner, "shop")
    assert await _names(platform) == (["shop"], ["db", "web"])
    assert all(node.docker.running() for node in nodes.values())
