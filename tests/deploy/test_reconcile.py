"""The reconciler against real agent apps over ASGI (real nginx, fake containers; see
tests/deploy/conftest.py): a deploy, then a node broken the way a skipped clean-up or an
incomplete revert leaves it, then one pass; the node ends with exactly the live release."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.core import deployments, fleet, reconcile
from dockyard.core.platform import Platform
from dockyard.deploy import plan
from dockyard.kernel.queue import JobContext
from dockyard.models.deploys import DeployRequest, Effective
from dockyard.models.enums import Role
from dockyard.models.schemas import ServerPublic
from tests import sqlite_only
from tests.deploy.conftest import HOST, SECRET, AgentNode
from tests.deploy.fake_docker import Hold
from tests.deploy.test_engine import (
    FAST,
    MakeRunner,
    everywhere,
    live_release,
    outcome,
    reach,
    running,
    serving,
    start,
)

database_url = sqlite_only.database_url  # nothing here depends on the database kind

Nodes = dict[str, AgentNode]
SITE = "shop-web"


def clients(nodes: Nodes, away: set[str] | None = None) -> fleet.ClientFactory:
    """Clients of the agents over ASGI; those named in `away` are refused (agent down)."""
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused (the agent is down)")

    def client_of(server: ServerPublic) -> NodeAgentClient:
        transport: httpx.AsyncBaseTransport = (
            httpx.MockTransport(refuse) if server.name in (away or set())
            else nodes[server.name].transport)
        return NodeAgentClient(f"http://{server.name}.test", SECRET, transport=transport)

    return client_of


async def server_named(platform: Platform, name: str) -> ServerPublic:
    return next(s for s in await fleet.pollable_servers(platform) if s.name == name)


async def one_pass(platform: Platform, nodes: Nodes, name: str) -> list[str]:
    server = await server_named(platform, name)
    return [e.message for e in await reconcile.reconcile_server(platform, server,
                                                                clients(nodes))]


async def failed_deployment(platform: Platform, make_runner: MakeRunner, shop: Any,
                            nodes: Nodes) -> str:
    """A deployment that failed (its container crashed on node2) and was reverted."""
    runner = make_runner()
    deployment_id = await start(platform, runner, shop)
    nodes["node2"].docker.crash.add(f"deploy_{deployment_id[:8]}")
    assert (await outcome(platform, runner, shop, deployment_id)).status == "failed"
    return deployment_id


async def plant_stray(node: AgentNode, deployment_id: str) -> int:
    """What a skipped revert leaves: the deployment's container, running; its port."""
    env = plan.release_env({}, Effective(), deployment_id, "shop/web")
    spec = plan.container_spec(SITE, deployment_id, ImageRef(repository="registry.test:5000/x"),
                               env, Effective())
    async with NodeAgentClient("http://n.test", SECRET, transport=node.transport) as client:
        return (await client.run_container(spec)).ports[0].host_port


async def point_site(node: AgentNode, port: int) -> None:
    async with NodeAgentClient("http://n.test", SECRET, transport=node.transport) as client:
        await client.apply_site(plan.site_for(SITE, [HOST], [port]))


def live_ports(node: AgentNode, release: str) -> set[int]:
    return {c.host_port for c in node.docker.containers.values()
            if c.env.get("DOCKYARD_RELEASE") == release and c.host_port}


async def test_a_stray_and_a_site_left_on_a_failed_deployment_are_corrected(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        client: httpx.AsyncClient) -> None:
    platform.settings.reconcile_grace_seconds = 0
    live = await live_release(platform, make_runner(), shop)
    failed = await failed_deployment(platform, make_runner, shop, nodes)
    node = nodes["node1"]
    stray_port = await plant_stray(node, failed)
    await point_site(node, stray_port)
    assert await node.serves() == failed[:8]
    [port] = live_ports(node, live)
    calls_before = len(node.docker.calls)

    assert await one_pass(platform, nodes, "node1") == [
        f"re-pointed site shop-web at port {port} of live release {live} (it pointed at "
        f"port {stray_port})",
        f"removed stray container shop-web-{failed[:8]} of failed deployment {failed[:8]}"]
    calls = [c for c in node.docker.calls[calls_before:] if c in ("stop", "remove_container")]
    assert calls == ["stop", "remove_container"]  # stopped with a grace, as a deploy would
    assert await serving(nodes) == everywhere(nodes, live)
    assert running(nodes) == everywhere(nodes, {live})
    assert node.upstream_ports() == {port}
    assert await one_pass(platform, nodes, "node1") == []  # converged

    server = await server_named(platform, "node1")
    answer = await client.get(f"/api/v1/infra/servers/{server.id}/events",
                              headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert [e["kind"] for e in answer.json()] == ["re-pointed", "removed"]
    assert answer.json()[1]["message"] == (
        f"removed stray container shop-web-{failed[:8]} of failed deployment {failed[:8]}")


async def test_a_lost_container_of_the_live_release_is_recreated_and_served(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    live = await live_release(platform, make_runner(), shop)
    node = nodes["node2"]
    lost = node.docker.containers.pop(f"shop-web-{live}")
    lost.stop()
    assert await node.serves() == "HTTP 502"

    said = await one_pass(platform, nodes, "node2")
    [port] = live_ports(node, live)
    assert said == [
        f"re-created missing container shop-web-{live} (web.1) of live release {live}",
        f"re-pointed site shop-web at port {port} of live release {live} (it pointed at "
        f"port {lost.host_port})"]
    assert await serving(nodes) == everywhere(nodes, live)
    recreated = node.docker.containers[f"shop-web-{live}"]
    assert recreated.env["DOCKYARD_PROCESS"] == "web.1"
    assert recreated.config["Labels"][plan.DEPLOYMENT_LABEL].startswith(live)


async def test_a_fresh_stray_waits_out_its_grace_period_as_drift(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        client: httpx.AsyncClient) -> None:
    live = await live_release(platform, make_runner(), shop)
    failed = await failed_deployment(platform, make_runner, shop, nodes)
    await plant_stray(nodes["node3"], failed)

    assert await one_pass(platform, nodes, "node3") == []
    assert running(nodes)["node3"] == {live, failed[:8]}
    server = await server_named(platform, "node3")
    answer = await client.get(f"/api/v1/infra/servers/{server.id}", headers=shop.headers)
    [drift] = answer.json()["drift"]
    assert (drift["subject"], drift["message"]) == (
        f"shop-web-{failed[:8]}", f"stray container shop-web-{failed[:8]} of failed "
        f"deployment {failed[:8]}, removed after the grace period")

    platform.settings.reconcile_grace_seconds = 0.2  # counted from the first pass
    await asyncio.sleep(0.2)
    assert await one_pass(platform, nodes, "node3") == [
        f"removed stray container shop-web-{failed[:8]} of failed deployment {failed[:8]}"]
    assert running(nodes)["node3"] == {live}
    assert (await server_named(platform, "node3")).drift == []


async def test_nothing_of_a_deployment_in_flight_is_touched(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    platform.settings.reconcile_grace_seconds = 0
    live = await live_release(platform, make_runner(), shop)
    failed = await failed_deployment(platform, make_runner, shop, nodes)
    node = nodes["node1"]
    await plant_stray(node, failed)
    node.docker.hold = hold = Hold("start")
    runner = make_runner()
    deployment_id = await start(platform, runner, shop)
    await reach(runner, hold)
    before = dict(node.docker.containers)

    assert await one_pass(platform, nodes, "node1") == []
    assert node.docker.containers == before
    assert {f"shop-web-{deployment_id[:8]}", f"shop-web-{failed[:8]}"} <= set(before)

    hold.release.set()  # the deploy's own clean-up then retires the old and the stray
    assert (await outcome(platform, runner, shop, deployment_id)).status == "succeeded"
    assert await one_pass(platform, nodes, "node1") == []
    assert running(nodes)["node1"] == {deployment_id[:8]} != {live}


async def test_an_agent_that_was_down_is_reconciled_at_the_next_tick(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    platform.settings.reconcile_grace_seconds = 0
    await live_release(platform, make_runner(), shop)
    failed = await failed_deployment(platform, make_runner, shop, nodes)
    await plant_stray(nodes["node3"], failed)
    due: dict[str, float] = {}
    now = 1000.0

    await reconcile.reconcile_due(platform, due, clients(nodes, away={"node3"}), lambda: now)
    ids = {s.name: s.id for s in await fleet.pollable_servers(platform)}
    assert due == {ids["node1"]: now + 30, ids["node2"]: now + 30, ids["node3"]: 0}
    assert f"shop-web-{failed[:8]}" in nodes["node3"].docker.containers

    await reconcile.reconcile_due(platform, due, clients(nodes), lambda: now + 5)
    assert due[ids["node3"]] == now + 35
    assert f"shop-web-{failed[:8]}" not in nodes["node3"].docker.containers


@pytest.mark.parametrize("limit", [0, 1001])
async def test_an_events_limit_out_of_range_is_refused(
        shop: Any, platform: Platform, client: httpx.AsyncClient, limit: int) -> None:
    server = await server_named(platform, "node1")
    answer = await client.get(f"/api/v1/infra/servers/{server.id}/events",
                              params={"limit": limit}, headers=shop.headers)
    assert answer.status_code == 422


async def test_the_worker_job_tries_every_server_and_retries_those_that_did_not_answer(
        platform: Platform, shop: Any) -> None:
    """The registered servers' agents are not listening at their address here: each pass
    fails, and each server is due again at the next tick."""
    context = JobContext(worker="w", resources={"settings": platform.settings,
                                                "db": platform.db})
    await reconcile.reconcile_job(context, {})
    ids = {s.id for s in await fleet.pollable_servers(platform)}
    assert context.resources["reconcile_due"] == dict.fromkeys(ids, 0)


async def test_a_correction_the_agent_refuses_is_one_failed_event_and_drift_until_done(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    live = await live_release(platform, make_runner(), shop)
    node = nodes["node2"]
    node.docker.containers.pop(f"shop-web-{live}").stop()
    refusal = (f"could not re-create missing container shop-web-{live} (web.1) of live release "
               f"{live}")
    for _ in range(2):
        node.docker.hold = Hold("create_container_from_config", fail="disk full")
        node.docker.hold.release.set()
        said = await one_pass(platform, nodes, "node2")
        drift = (await server_named(platform, "node2")).drift
        assert [d.message.startswith(f"{refusal}: ") and "disk full" in d.message
                for d in drift] == [True]
    assert said == []  # the second refusal is no new event

    node.docker.hold = None
    said = await one_pass(platform, nodes, "node2")
    assert [m.split(" port")[0] for m in said] == [
        f"re-created missing container shop-web-{live} (web.1) of live release {live}",
        "re-pointed site shop-web at"]
    assert (await server_named(platform, "node2")).drift == []
    assert await serving(nodes) == everywhere(nodes, live)
    server = await server_named(platform, "node2")
    events = await reconcile.server_events(platform, shop.actor(Role.OWNER), server.id, 10)
    assert [(e.kind, e.message.startswith(refusal)) for e in events] == [
        ("failed", True), ("re-created", False), ("re-pointed", False)]


async def test_a_fault_on_one_server_neither_stops_the_others_nor_repeats_every_tick(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    platform.settings.reconcile_grace_seconds = 0
    await live_release(platform, make_runner(), shop)
    failed = await failed_deployment(platform, make_runner, shop, nodes)
    await plant_stray(nodes["node1"], failed)
    working = clients(nodes)

    def client_of(server: ServerPublic) -> NodeAgentClient:
        if server.name == "node3":
            raise ValueError("a fault of ours")
        return working(server)

    due: dict[str, float] = {}
    await reconcile.reconcile_due(platform, due, client_of, lambda: 1000.0)
    assert sorted(due.values()) == [1030.0] * 3
    assert f"shop-web-{failed[:8]}" not in nodes["node1"].docker.containers


async def test_a_server_a_deploy_left_out_gives_up_the_service_and_its_site(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    """A deploy to some servers means the service runs on exactly those (its placement):
    the others' old containers and site go, and their nginx no longer answers 502."""
    platform.settings.reconcile_grace_seconds = 0
    old = await live_release(platform, make_runner(), shop)
    runner = make_runner()
    body = DeployRequest.model_validate({
        "project": "shop", "service": "web", "servers": ["node1"], "params": FAST,
        "source": {"kind": "image", "image": "registry.test:5000/hello:2"}})
    new = await deployments.start_deploy(platform, runner, shop.actor(Role.OWNER), body)
    assert (await outcome(platform, runner, shop, new)).status == "succeeded"
    assert running(nodes)["node2"] == {old}

    assert await one_pass(platform, nodes, "node2") == [
        f"removed stray container shop-web-{old} of old release {old}",
        "removed site shop-web: no live release of shop/web runs here"]
    assert running(nodes) == {"node1": {new[:8]}, "node2": set(), "node3": {old}}
    assert await nodes["node2"].serves() == "HTTP 404"
    assert await nodes["node1"].serves() == new[:8]
