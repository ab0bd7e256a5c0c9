"""A pull request's deliveries that arrive while its preview is being deployed wait for that
deployment: closed meanwhile, the preview is removed once the deployment ends (the close wins
over an update queued before it). Three in-process agents (real nginx, fake Docker); the
deployment is held by holding back its connections to the agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dockyard.agent.client import NodeAgentClient
from dockyard.core import hook_queue
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.settings import Settings
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import HookDelivery
from tests.deploy.conftest import SECRET, AgentNode
from tests.deploy.test_engine import MakeRunner
from tests.fakes.git_server import GitServer
from tests.hooks import forges
from tests.real_agent import SQLITE_ONLY, api_using

Nodes = dict[str, AgentNode]
TOKEN = "glpat-preview-token-2"
HOST = "pr-3.web.shop.localhost"


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "repos", [("x-access-token", TOKEN)]).start()
    server.create("shop")
    yield server
    server.stop()


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


@pytest.fixture
async def api(settings: Settings, platform: Platform, runner: DeployRunner
              ) -> AsyncIterator[httpx.AsyncClient]:
    async with api_using(settings, platform, runner) as http:
        yield http


async def deliver(api: httpx.AsyncClient, url: str, secret: str, action: str, sha: str
                  ) -> tuple[forges.Sent, dict[str, Any]]:
    sent = forges.github("pull_request", forges.github_pull(url, action, 3, sha, "feature"),
                         secret)
    answer = await api.post("/api/v1/hooks/github", content=sent.body, headers=sent.headers)
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    return sent, dict(result)


@SQLITE_ONLY
async def test_a_pull_request_closed_while_its_preview_deploys_is_removed_when_that_ends(
        api: httpx.AsyncClient, shop: Any, nodes: Nodes, runner: DeployRunner,
        platform: Platform, git_server: GitServer, gate: asyncio.Event) -> None:
    url = git_server.url_of("shop")
    body = {"repo_url": url, "branch": "main", "previews": True, "token": TOKEN}
    link = await api.put("/api/v1/projects/shop/services/web/repo-link", json=body,
                         headers=shop.headers)
    assert link.status_code == 200, link.text
    secret = link.json()["secret"]
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
