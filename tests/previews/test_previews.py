"""Preview environments, in process: three real agent apps (real nginx, fake Docker), a real
git repository on disk, the fake Cloudflare, a real database. A pull request opened deploys
its head to `web-pr-1` at its own host on every server; a new head deploys again while the
main service keeps its release; closing it leaves no container, site, image or DNS record."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from dockyard.core import credentials, deployments, previews, projects, services
from dockyard.core.platform import Platform
from dockyard.deploy.plan import image_base
from dockyard.kernel.errors import Conflict, ServerFailed
from dockyard.models.enums import Role
from dockyard.models.hooks import LinkInfo, PullRequestEvent
from dockyard.models.schemas import CredentialSet, ProjectUpdate
from dockyard.models.tables import Placement, RepoLink, Server, Service, Workspace
from tests.deploy.conftest import NODES, AgentNode
from tests.deploy.test_engine import MakeRunner, live_release
from tests.fakes.cloudflare import TOKEN as CLOUDFLARE_TOKEN
from tests.fakes.cloudflare import FakeCloudflare
from tests.real_agent import SQLITE_ONLY

Nodes = dict[str, AgentNode]
ZONE = "example.test"
MAIN_HOST = f"web.shop.{ZONE}"
PREVIEW_HOST = f"pr-7.web.shop.{ZONE}"
SITE = "shop-web-pr-7"


def git(repo: Path, *argv: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.test", *argv],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def commit(repo: Path, text: str) -> str:
    (repo / "app.py").write_text(f"print({text!r})\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", text)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose branch `feature` is the pull request's head."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "Dockerfile").write_text("FROM scratch\nCOPY app.py /\n")
    commit(path, "main")
    git(path, "checkout", "-q", "-b", "feature")
    return path


@pytest.fixture
def zoned(platform: Platform) -> Iterator[Platform]:
    kept = platform.settings
    platform.settings = kept.model_copy(update={"apps_domain": ZONE})
    yield platform
    platform.settings = kept


@pytest.fixture
def cloudflare(zoned: Platform, shop: Any, tmp_path: Path) -> Iterator[FakeCloudflare]:
    kept = zoned.settings
    with FakeCloudflare(tmp_path / "cloudflare.json", zones=(ZONE,)) as fake:
        zoned.settings = kept.model_copy(update={"cloudflare_api_url": fake.base_url})
        yield fake
    zoned.settings = kept


async def link_of(platform: Platform, shop: Any, repo: Path, dns: str = "") -> LinkInfo:
    async def tx(s: Any) -> LinkInfo:
        web = (await s.scalars(select(Service).where(Service.name == "web"))).one()
        row = RepoLink(workspace_id=shop.workspace_id, service_id=web.id, user_id=shop.user_id,
                       repo_url=str(repo), repo_key="local/repo", branch="main",
                       secret_ciphertext=platform.box.encrypt("secret"), previews=True,
                       preview_dns_credential=dns)
        s.add(row)
        await s.flush()
        return LinkInfo(row.id, shop.workspace_id, web.id, shop.user_id, "shop", "web",
                        str(repo), "main", True, dns)

    return await platform.db.write(tx)


async def dns_link(platform: Platform, shop: Any, repo: Path) -> LinkInfo:
    """The link, its previews' DNS records made with the owner's Cloudflare credential `cf`."""
    await credentials.set_credential(platform, shop.actor(Role.OWNER), "cf", CredentialSet(
        provider="cloudflare", token=CLOUDFLARE_TOKEN))
    return await link_of(platform, shop, repo, dns="cf")


def pull_request(head: str, action: str = "opened", number: int = 7, **more: Any
                 ) -> PullRequestEvent:
    return PullRequestEvent(repo_urls=("local/repo",), number=number, action=action,  # type: ignore[arg-type]
                            head_commit=head, head_branch="feature", base_branch="main",
                            **more)


async def served(nodes: Nodes, host: str) -> set[str]:
    return {await node.serves(host) for node in nodes.values()}


def leftovers(nodes: Nodes, base: str) -> dict[str, list[str]]:
    """What any node still has of the preview: containers, its site, its images."""
    found: dict[str, list[str]] = {}
    for name, node in nodes.items():
        things = [c for c in node.docker.containers if c.startswith(SITE)]
        things += [SITE] if SITE in node.node.state.sites else []
        things += [i for i in node.docker.images if i.startswith(f"{base}:")]
        if things:
            found[name] = things
    return found


@SQLITE_ONLY
async def test_a_pull_request_opened_updated_and_closed(
        zoned: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, repo: Path,
        cloudflare: FakeCloudflare) -> None:
    platform, runner, owner = zoned, make_runner(), shop.actor(Role.OWNER)
    main_release = await live_release(platform, runner, shop)
    link = await dns_link(platform, shop, repo)
    first = commit(repo, "one")
    opened = await previews.on_pull_request(platform, runner, link, pull_request(first))
    assert opened.outcome == "deployed", opened
    first_release = await _succeeded(platform, runner, shop, opened.deployment_id)
    assert await served(nodes, PREVIEW_HOST) == {first_release}
    assert [(r["type"], r["name"], r["content"]) for r in cloudflare.records(ZONE)] == [
        ("A", PREVIEW_HOST, "127.0.0.1")]
    listed = await previews.list_previews(platform, owner, "shop")
    assert [(x.service, x.pull_request, x.host, x.commit, x.status) for x in listed] == [
        ("web-pr-7", 7, PREVIEW_HOST, first, "succeeded")]

    second = commit(repo, "two")
    updated = await previews.on_pull_request(platform, runner, link,
                                             pull_request(second, "updated"))
    second_release = await _succeeded(platform, runner, shop, updated.deployment_id)
    assert second_release != first_release
    assert await served(nodes, PREVIEW_HOST) == {second_release}
    assert await served(nodes, MAIN_HOST) == {main_release}
    main_history = await deployments.history(platform, owner, "shop", "web", 10)
    assert [(x.id[:8], x.live) for x in main_history] == [(main_release, True)]

    base = image_base(platform.settings.registry, await _workspace(platform, shop),
                      "shop", "web-pr-7")
    assert leftovers(nodes, base)  # it is there, so its absence below means something
    closed = await previews.on_pull_request(platform, runner, link,
                                            pull_request(second, "closed"))
    assert closed.outcome == "removed", closed
    assert cloudflare.violations == []
    assert leftovers(nodes, base) == {}
    assert {await node.serves(PREVIEW_HOST) for node in nodes.values()} == {"HTTP 404"}
    assert await served(nodes, MAIN_HOST) == {main_release}
    assert cloudflare.records(ZONE) == []
    assert await previews.list_previews(platform, owner, "shop") == []
    again = await previews.on_pull_request(platform, runner, link,
                                           pull_request(second, "closed"))
    assert again.outcome == "ignored"


async def _succeeded(platform: Platform, runner: Any, shop: Any, deployment_id: str | None
                     ) -> str:
    assert deployment_id is not None
    await runner.wait_idle()
    found = await deployments.get_deployment(platform, shop.actor(Role.OWNER), deployment_id)
    assert found.status == "succeeded", found
    return deployment_id[:8]


@SQLITE_ONLY
async def test_refusals_fork_previews_off_and_the_limit(
        zoned: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, repo: Path) -> None:
    platform, runner, owner = zoned, make_runner(), shop.actor(Role.OWNER)
    link = await link_of(platform, shop, repo)
    head = commit(repo, "one")
    fork = await previews.on_pull_request(platform, runner, link,
                                          pull_request(head, from_fork=True))
    assert (fork.outcome, fork.deployment_id) == ("refused", None)
    assert "only branches of the linked repository" in fork.detail
    off = await previews.on_pull_request(platform, runner, replace(link, previews=False),
                                         pull_request(head))
    assert off.outcome == "refused"
    assert "previews are off" in off.detail
    await _limit(platform, owner, 1)
    assert (await previews.on_pull_request(platform, runner, link, pull_request(head))
            ).outcome == "deployed"
    await runner.wait_idle()
    over = await previews.on_pull_request(platform, runner, link,
                                          pull_request(head, number=8))
    assert over.outcome == "refused"
    assert "limit of 1 preview" in over.detail
    assert "web-pr-7" in over.detail
    assert [x.service for x in await previews.list_previews(platform, owner, "shop")] == [
        "web-pr-7"]
    with pytest.raises(Conflict, match="preview environments"):
        await services.delete_service(platform, runner.connect, owner, "shop", "web")


async def _workspace(platform: Platform, shop: Any) -> str:
    return await platform.db.read(lambda s: s.scalar(
        select(Workspace.name).where(Workspace.id == shop.workspace_id)))


async def _limit(platform: Platform, owner: Any, limit: int) -> None:
    await projects.update_project(platform, owner, "shop", ProjectUpdate(preview_limit=limit))


async def test_deleting_a_deployed_app_takes_it_off_every_server(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner, owner = make_runner(), shop.actor(Role.OWNER)
    await live_release(platform, runner, shop)
    assert all(node.docker.running() for node in nodes.values())
    removed = await services.delete_service(platform, runner.connect, owner, "shop", "web")
    assert sorted(x.server for x in removed) == list(NODES)
    assert all(x.site and len(x.containers) == 1 and x.images for x in removed), removed
    assert not any(node.docker.running() for node in nodes.values())
    assert all("shop-web" not in node.node.state.sites for node in nodes.values())
    assert {await node.serves() for node in nodes.values()} == {"HTTP 404"}


async def test_an_app_is_kept_while_a_server_it_runs_on_cannot_be_reached(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner, owner = make_runner(), shop.actor(Role.OWNER)
    release = await live_release(platform, runner, shop)
    nodes["node2"].network.away = True
    with pytest.raises(ServerFailed, match="node2"):
        await services.delete_service(platform, runner.connect, owner, "shop", "web")
    assert (await services.get_service(platform, owner, "shop", "web")).name == "web"
    assert nodes["node2"].docker.running() == {f"shop-web-{release}": release}
    nodes["node2"].network.away = False
    await services.delete_service(platform, runner.connect, owner, "shop", "web")
    assert not any(node.docker.running() for node in nodes.values())


async def test_a_server_the_app_is_not_placed_on_is_cleaned_when_it_runs_some_of_it(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner, owner = make_runner(), shop.actor(Role.OWNER)
    await live_release(platform, runner, shop)

    async def forget_node3(s: Any) -> None:  # as a deployment that failed half-way leaves it
        node3 = (await s.scalars(select(Server).where(Server.name == "node3"))).one()
        await s.execute(delete(Placement).where(Placement.server_id == node3.id))

    await platform.db.write(forget_node3)
    removed = await services.delete_service(platform, runner.connect, owner, "shop", "web")
    assert sorted(x.server for x in removed) == list(NODES)
    assert not any(node.docker.running() for node in nodes.values())


@SQLITE_ONLY
async def test_services_delete_of_a_preview_removes_its_dns_record_too(
        zoned: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, repo: Path,
        cloudflare: FakeCloudflare) -> None:
    platform, runner, owner = zoned, make_runner(), shop.actor(Role.OWNER)
    link = await dns_link(platform, shop, repo)
    opened = await previews.on_pull_request(platform, runner, link,
                                            pull_request(commit(repo, "one")))
    await _succeeded(platform, runner, shop, opened.deployment_id)
    assert [r["name"] for r in cloudflare.records(ZONE)] == [PREVIEW_HOST]
    await services.delete_service(platform, runner.connect, owner, "shop", "web-pr-7")
    assert cloudflare.records(ZONE) == []
    assert not any(node.docker.running() for node in nodes.values())
