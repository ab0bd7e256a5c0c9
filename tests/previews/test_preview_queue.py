"""A pull request's deliveries that arrive while its preview is being deployed wait for that
deployment: closed meanwhile, the preview is removed once the deployment ends (the close wins
over an update queued before it). Three in-process agents (real nginx, fake Docker); the
deployment is held by holding back its connections to the agents."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dockyard.agent.client import NodeAgentClient
from dockyard.core import hook_queue
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import HookDelivery
from tests.deploy.conftest import SECRET
from tests.deploy.test_engine import MakeRunner
from tests.fakes.git_server import GitServer
from tests.previews.test_preview_hooks import HOST, deliver, link_previews
from tests.previews.test_previews import Nodes
from tests.real_agent import SQLITE_ONLY


@pytest.fixture
def gate() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def runner(make_runner: MakeRunner, nodes: Nodes, platform: Platform, gate: asyncio.Event
           ) -> DeployRunner:
    """A runner whose deployments reach the agents only once the gate opens, acting on the
    queued deliveries as the API's does."""

    async def connect(server: ServerPublic) -> NodeAgentClient:
        await gate.wait()
        return NodeAgentClient(f"http://{server.name}.test", SECRET,
                               transport=nodes[server.name].network)

    made = make_runner(connect)
    hook_queue.watch(platform, made)
    return made


@SQLITE_ONLY
async def test_a_pull_request_closed_while_its_preview_deploys_is_removed_when_that_ends(
        api: httpx.AsyncClient, shop: Any, nodes: Nodes, runner: DeployRunner,
        platform: Platform, git_server: GitServer, gate: asyncio.Event) -> None:
    url, secret = await link_previews(api, shop, git_server)
    first = git_server.commit("shop", {"Dockerfile": "FROM scratch\n"}, branch="feature")
    second = git_server.commit("shop", {"Dockerfile": "FROM scratch\n#2\n"}, branch="feature")

    _, opened = await deliver(api, url, secret, "opened", first)
    assert opened["outcome"] == "deployed", opened
    _, updated = await deliver(api, url, secret, "synchronize", second)
    closing, closed = await deliver(api, url, secret, "closed", second)
    assert (updated["outcome"], closed["outcome"]) == ("queued", "queued"), (updated, closed)
    assert f"shop/web-pr-3 is being deployed by deployment {opened['deployment_id'][:8]}" in (
        closed["detail"])

    gate.set()  # the preview's deployment goes on, ends, and the close is acted on
    await runner.wait_idle()
    assert {await node.serves(HOST) for node in nodes.values()} == {"HTTP 404"}
    assert not any(node.docker.running() for node in nodes.values())
    assert not any("shop-web-pr-3" in node.node.state.sites for node in nodes.values())

    async def rows(s: Any) -> list[HookDelivery]:
        return list(await s.scalars(select(HookDelivery).order_by(HookDelivery.created_at)))

    found = await platform.db.read(rows)
    assert [(row.action, row.outcome) for row in found] == [
        ("opened", "deployed"), ("updated", "superseded"), ("closed", "removed")]
    assert found[1].detail == (f"superseded by delivery {closing.delivery}, which closes "
                               "pull request #3")
    previews = await api.get("/api/v1/projects/shop/previews", headers=shop.headers)
    assert previews.json() == []
