"""A preview through the webhook route: GitHub-format pull_request deliveries, signed with the
link's secret, for a private repository served by a real git server; the preview runs on
three in-process agents (real nginx, fake Docker) and is gone from them once closed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.models.tables import HookDelivery
from tests.api.test_hooks import LINK, TOKEN
from tests.deploy.test_engine import MakeRunner
from tests.fakes.git_server import GitServer
from tests.hooks import forges
from tests.previews.test_previews import Nodes
from tests.real_agent import SQLITE_ONLY

HOST = "pr-3.web.shop.localhost"


@pytest.fixture
def runner(make_runner: MakeRunner) -> DeployRunner:
    return make_runner()


async def link_previews(api: httpx.AsyncClient, shop: Any, git_server: GitServer
                        ) -> tuple[str, str]:
    """shop/web linked to the git server's private repository `shop`, previews on: the
    repository's URL and the link's secret."""
    url = git_server.url_of("shop")
    body = {"repo_url": url, "branch": "main", "previews": True, "token": TOKEN}
    link = await api.put(LINK, json=body, headers=shop.headers)
    assert link.status_code == 200, link.text
    return url, link.json()["secret"]


async def deliver(api: httpx.AsyncClient, url: str, secret: str, action: str, sha: str
                  ) -> tuple[forges.Sent, dict[str, Any]]:
    """A signed pull_request delivery for pull request #3, and its one result."""
    sent = forges.github("pull_request", forges.github_pull(url, action, 3, sha, "feature"),
                         secret)
    answer = await api.post("/api/v1/hooks/github", content=sent.body, headers=sent.headers)
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    return sent, dict(result)


@SQLITE_ONLY
async def test_a_signed_pull_request_opens_and_closes_its_preview(
        api: httpx.AsyncClient, shop: Any, nodes: Nodes, runner: DeployRunner,
        platform: Platform, git_server: GitServer) -> None:
    url, secret = await link_previews(api, shop, git_server)
    sha = git_server.commit("shop", {"Dockerfile": "FROM scratch\n"}, branch="feature")

    _, opened = await deliver(api, url, secret, "opened", sha)
    assert opened["outcome"] == "deployed", opened
    await runner.wait_idle()
    release = opened["deployment_id"][:8]
    assert {await node.serves(HOST) for node in nodes.values()} == {release}

    _, closed = await deliver(api, url, secret, "closed", sha)
    assert closed["outcome"] == "removed", closed
    assert {await node.serves(HOST) for node in nodes.values()} == {"HTTP 404"}
    assert not any(node.docker.running() for node in nodes.values())
    assert not any("shop-web-pr-3" in node.node.state.sites for node in nodes.values())

    async def outcomes(s: Any) -> list[str]:
        rows = await s.scalars(select(HookDelivery).order_by(HookDelivery.created_at))
        return [f"{row.pull_request}:{row.outcome}" for row in rows]

    assert await platform.db.read(outcomes) == ["3:deployed", "3:removed"]
