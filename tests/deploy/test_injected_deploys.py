"""Deploys of an app beside its project's stateful services, in process (the real runner and
engine, the real agent app over ASGI, fake containers): the release's environment is the
app's variables plus the URLs of its project's services (never another project's), each
container resolves their names to the right server, the user's own variable wins and the log
says so, and a rollback puts back exactly the env and links of its release."""

from __future__ import annotations

from typing import Any

from dockyard.core import deployments, env, fleet
from dockyard.core.platform import Platform
from dockyard.core.projects import create_project
from dockyard.core.services import create_service
from dockyard.models.deployment_plan import ReleaseLink
from dockyard.models.deploys import RollbackRequest
from dockyard.models.enums import Role, ServiceKind
from dockyard.models.schemas import EnvVarItem, ProjectCreate, ServiceCreate
from tests import sqlite_only
from tests.deploy.conftest import AgentNode
from tests.deploy.fake_docker import Hold
from tests.deploy.test_engine import MakeRunner, live_release, outcome, start
from tests.deploy.test_process_types import deploy_code
from tests.deploy.test_reconcile import one_pass
from tests.injection_rows import add_stateful, remove_stateful, set_server_ip

database_url = sqlite_only.database_url  # nothing here depends on the database kind

Nodes = dict[str, AgentNode]
PG_URL = "postgresql://postgres:pw-postgres@postgres.shop.dockyard.internal:20001/postgres"
LOGS_URL = "redis://:pw-redis-logs@redis-logs.shop.dockyard.internal:20002/0"
PG_HOST, LOGS_HOST = "postgres.shop.dockyard.internal", "redis-logs.shop.dockyard.internal"


async def linked_shop(platform: Platform, shop: Any) -> None:
    """shop: a Postgres on node1, a Redis `redis-logs` on node2; project other: a Redis on
    node3. The nodes' addresses are 10.0.0.1-3."""
    for n in (1, 2, 3):
        await set_server_ip(platform, shop.workspace_id, f"node{n}", f"10.0.0.{n}")
    await add_stateful(platform, shop.workspace_id, "shop", "postgres", ServiceKind.POSTGRES,
                       "node1", 20001)
    await add_stateful(platform, shop.workspace_id, "shop", "redis-logs", ServiceKind.REDIS,
                       "node2", 20002)
    await create_project(platform, shop.actor(Role.OWNER), ProjectCreate(name="other"))
    await add_stateful(platform, shop.workspace_id, "other", "redis", ServiceKind.REDIS,
                       "node3", 20003)


def web_container(node: AgentNode, release: str) -> Any:
    return node.docker.containers[f"shop-web-{release}"]


def extra_hosts(container: Any) -> list[str]:
    return sorted(container.config["HostConfig"].get("ExtraHosts") or [])


def link(service: str, variable: str, server: str, ip: str, given_by: str | None = None
         ) -> ReleaseLink:
    return ReleaseLink(service=service, kind=ServiceKind.REDIS if "redis" in service else
                       ServiceKind.POSTGRES, variable=variable,
                       hostname=f"{service}.shop.dockyard.internal", server_id=server,
                       server_ip=ip, given_by=given_by)


async def server_ids(platform: Platform, shop: Any) -> dict[str, str]:
    return {s.name: s.id for s in await fleet.pollable_servers(platform)
            if s.workspace_id == shop.workspace_id}


async def test_each_container_gets_its_projects_services_by_name_and_reaches_each_server(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    await linked_shop(platform, shop)
    runner = make_runner()
    release = await live_release(platform, runner, shop)
    for node in nodes.values():
        got = web_container(node, release).env
        assert {k: v for k, v in got.items() if k.endswith("_URL")} == {
            "DATABASE_URL": PG_URL, "REDIS_LOGS_URL": LOGS_URL}  # never other's REDIS_URL
    assert [extra_hosts(web_container(nodes[n], release)) for n in nodes] == [
        [f"{PG_HOST}:host-gateway", f"{LOGS_HOST}:10.0.0.2"],
        [f"{PG_HOST}:10.0.0.1", f"{LOGS_HOST}:host-gateway"],
        [f"{PG_HOST}:10.0.0.1", f"{LOGS_HOST}:10.0.0.2"]]

    ids = await server_ids(platform, shop)
    [live] = await deployments.history(platform, shop.actor(Role.OWNER), "shop", "web", 1)
    assert live.config["links"] == [
        link("postgres", "DATABASE_URL", ids["node1"], "10.0.0.1").model_dump(mode="json"),
        link("redis-logs", "REDIS_LOGS_URL", ids["node2"], "10.0.0.2").model_dump(mode="json")]
    assert "pw-" not in str(live.model_dump())  # the passwords stay in the encrypted env
    said = [e.message for e in await runner.events.since(live.id, 0) if e.kind == "links"]
    assert said == ["linked stateful services: postgres (DATABASE_URL), "
                    "redis-logs (REDIS_LOGS_URL)"]


async def test_the_users_own_variable_wins_and_the_deploy_log_says_so(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    await linked_shop(platform, shop)
    mine = "postgresql://me:secret@db.example.test:5432/shop"
    await env.set_env(platform, shop.actor(Role.OWNER), "shop", "web",
                      EnvVarItem(key="DATABASE_URL", value=mine))
    runner = make_runner()
    release = await live_release(platform, runner, shop)
    got = web_container(nodes["node3"], release).env
    assert (got["DATABASE_URL"], got["REDIS_LOGS_URL"]) == (mine, LOGS_URL)
    [live] = await deployments.history(platform, shop.actor(Role.OWNER), "shop", "web", 1)
    said = [e.message for e in await runner.events.since(live.id, 0) if e.kind == "links"]
    assert said == ["linked stateful services: redis-logs (REDIS_LOGS_URL)",
                    "DATABASE_URL set by you, not injected from postgres"]
    assert [x["given_by"] for x in live.config["links"]] == ["you", None]


async def test_a_rollback_puts_back_the_env_and_links_of_its_release(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    bare = await live_release(platform, runner, shop)
    await linked_shop(platform, shop)
    linked = await live_release(platform, runner, shop)
    assert "DATABASE_URL" in web_container(nodes["node1"], linked).env

    owner = shop.actor(Role.OWNER)
    back = await deployments.start_rollback(platform, runner, owner, RollbackRequest(
        project="shop", service="web", release=bare))
    assert (await outcome(platform, runner, shop, back)).status == "succeeded"
    container = web_container(nodes["node1"], back[:8])
    assert not [k for k in container.env if k.endswith("_URL")]
    assert extra_hosts(container) == []

    service_id = await add_stateful(platform, shop.workspace_id, "shop", "redis",
                                    ServiceKind.REDIS, "node3", 20004)
    await remove_stateful(platform, service_id)  # gone again: the old release keeps its own
    again = await deployments.start_rollback(platform, runner, owner, RollbackRequest(
        project="shop", service="web", release=linked))
    assert (await outcome(platform, runner, shop, again)).status == "succeeded"
    restored = web_container(nodes["node2"], again[:8])
    assert (restored.env["DATABASE_URL"], restored.env["REDIS_LOGS_URL"]) == (PG_URL, LOGS_URL)
    assert extra_hosts(restored) == [f"{PG_HOST}:10.0.0.1", f"{LOGS_HOST}:host-gateway"]
    [live] = await deployments.history(platform, owner, "shop", "web", 1)
    assert [x["service"] for x in live.config["links"]] == ["postgres", "redis-logs"]


async def test_a_redeploy_of_the_project_gives_its_apps_a_new_service(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    before = await live_release(platform, runner, shop)
    owner = shop.actor(Role.OWNER)
    await create_service(platform, owner, "shop", ServiceCreate(name="api"))  # no release
    await add_stateful(platform, shop.workspace_id, "shop", "redis", ServiceKind.REDIS,
                       "node1", 20005)
    assert await deployments.linked_apps(platform, owner, "shop") == ["web"]
    [started] = await deployments.redeploy_project_apps(platform, runner, owner, "shop")
    assert (started.service, started.skipped) == ("web", "")
    assert started.deployment_id is not None
    result = await outcome(platform, runner, shop, started.deployment_id)
    assert result.status == "succeeded"
    assert (result.image_tag or "").endswith(f"deploy_{before}")  # the live image again
    got = web_container(nodes["node2"], started.deployment_id[:8]).env
    assert got["REDIS_URL"] == "redis://:pw-redis@redis.shop.dockyard.internal:20005/0"


async def test_a_redeploy_skips_an_app_being_deployed_and_says_why(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    nodes["node1"].docker.hold = hold = Hold("start")
    flying = await start(platform, runner, shop)
    [skipped] = await deployments.redeploy_project_apps(
        platform, runner, shop.actor(Role.OWNER), "shop")
    assert skipped.deployment_id is None
    assert skipped.skipped == (f"service shop/web is being deployed by deployment "
                               f"{flying[:8]}; wait for it or follow it with "
                               f"`dockyard deployments follow {flying[:8]}`")
    hold.release.set()
    await outcome(platform, runner, shop, flying)


async def test_the_reconciler_recreates_a_container_with_its_names(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    await linked_shop(platform, shop)
    release = await live_release(platform, make_runner(), shop)
    node = nodes["node2"]
    node.docker.containers.pop(f"shop-web-{release}").stop()
    said = await one_pass(platform, nodes, "node2")
    assert said[0] == (f"re-created missing container shop-web-{release} (web.1) of live "
                       f"release {release}")
    recreated = web_container(node, release)
    assert extra_hosts(recreated) == [f"{PG_HOST}:10.0.0.1", f"{LOGS_HOST}:host-gateway"]
    assert recreated.env["DATABASE_URL"] == PG_URL


async def test_the_release_command_resolves_the_linked_services_on_its_server(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    await linked_shop(platform, shop)
    await deploy_code(platform, make_runner(), shop)
    assert nodes["node1"].docker.one_offs == [["sh", "-c", "exec python3 migrate.py"]]
    assert nodes["node1"].docker.one_off_hosts == [
        [f"{PG_HOST}:host-gateway", f"{LOGS_HOST}:10.0.0.2"]]
