"""Unlinking a service, or turning its previews off, takes its open previews down (nothing
would close them later): containers, sites, DNS records and rows; while one cannot be taken
down, the link is kept and the answer names the previews and how to remove each by hand.
In process: three real agent apps (real nginx, fake Docker), the fake Cloudflare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.core import previews, repo_links
from dockyard.core.platform import Platform
from dockyard.core.previews import PreviewRefused
from dockyard.kernel.errors import NotFound
from dockyard.models.enums import Role
from dockyard.models.hook_schemas import RepoLinkSet
from dockyard.models.hooks import LinkInfo
from tests.deploy.test_engine import MakeRunner, live_release
from tests.fakes.cloudflare import FakeCloudflare
from tests.previews.test_previews import (
    MAIN_HOST,
    ZONE,
    Nodes,
    commit,
    dns_link,
    link_of,
    pull_request,
)
from tests.real_agent import SQLITE_ONLY


async def _open(platform: Platform, runner: Any, link: LinkInfo, repo: Path, *numbers: int
                ) -> None:
    for number in numbers:
        head = commit(repo, f"pr {number}")
        opened = await previews.on_pull_request(platform, runner, link,
                                                pull_request(head, number=number))
        assert opened.outcome == "deployed", opened
        await runner.wait_idle()


def _previews_running(nodes: Nodes) -> list[str]:
    return [f"{name}:{c}" for name, node in nodes.items() for c in node.docker.running()
            if "-pr-" in c]


@SQLITE_ONLY
async def test_unlinking_takes_the_previews_down_or_keeps_the_link_saying_how(
        zoned: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, repo: Path,
        cloudflare: FakeCloudflare) -> None:
    platform, runner, owner = zoned, make_runner(), shop.actor(Role.OWNER)
    main_release = await live_release(platform, runner, shop)
    link = await dns_link(platform, shop, repo)
    await _open(platform, runner, link, repo, 7, 8)
    assert len(_previews_running(nodes)) == 2 * len(nodes)
    assert len(cloudflare.records(ZONE)) == 2

    nodes["node2"].network.away = True
    with pytest.raises(PreviewRefused, match=r"node2.*link is kept while previews are open "
                       r"\(web-pr-7, web-pr-8\).*`dockyard services delete web-pr-7 -p shop`"):
        await repo_links.unlink(platform, runner.connect, owner, "shop", "web")
    assert (await repo_links.show(platform, owner, "shop", "web")).previews
    assert len(cloudflare.records(ZONE)) == 2
    nodes["node2"].network.away = False

    unlinked = await repo_links.unlink(platform, runner.connect, owner, "shop", "web")
    assert unlinked.previews_removed == ["web-pr-7", "web-pr-8"]
    assert _previews_running(nodes) == []
    assert cloudflare.records(ZONE) == []
    assert cloudflare.violations == []
    assert await previews.list_previews(platform, owner, "shop") == []
    assert {await node.serves(MAIN_HOST) for node in nodes.values()} == {main_release}
    with pytest.raises(NotFound):
        await repo_links.show(platform, owner, "shop", "web")


@SQLITE_ONLY
async def test_turning_previews_off_takes_them_down(
        zoned: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, repo: Path) -> None:
    platform, runner, owner = zoned, make_runner(), shop.actor(Role.OWNER)
    link = await link_of(platform, shop, repo)
    await _open(platform, runner, link, repo, 7)
    body = RepoLinkSet(repo_url="https://git.example.test/shop/web.git", branch="main",
                       previews=True)
    kept = await repo_links.link(platform, runner.connect, owner, "shop", "web", body)
    assert kept.previews_removed == []
    assert len(_previews_running(nodes)) == len(nodes)

    off = await repo_links.link(platform, runner.connect, owner, "shop", "web",
                                body.model_copy(update={"previews": False}))
    assert (off.previews, off.previews_removed) == (False, ["web-pr-7"])
    assert _previews_running(nodes) == []
    assert all("shop-web-pr-7" not in node.node.state.sites for node in nodes.values())
    assert await previews.list_previews(platform, owner, "shop") == []
