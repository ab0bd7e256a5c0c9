"""The deploy engine's hard branches, in process: the real runner and engine, the real agent
app over ASGI with real nginx in front of fake containers (tests/deploy/fake_docker.py), a
real database. What the nodes serve is read through their nginx."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from dockyard.core import deployments
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.models.deploys import DeploymentPublic, DeployRequest
from dockyard.models.enums import Role
from dockyard.models.schemas import ServerPublic
from tests import sqlite_only
from tests.deploy.conftest import AgentNode
from tests.deploy.fake_docker import Hold

database_url = sqlite_only.database_url  # nothing here depends on the database kind

FAST = {"grace_seconds": 0, "health_interval_seconds": 0.05, "health_attempts": 20}
Nodes = dict[str, AgentNode]
MakeRunner = Callable[..., DeployRunner]


async def start(platform: Platform, runner: DeployRunner, shop: Any) -> str:
    body = DeployRequest.model_validate({
        "project": "shop", "service": "web", "params": FAST,
        "source": {"kind": "image", "image": "registry.test:5000/hello:1"}})
    return await deployments.start_deploy(platform, runner, shop.actor(Role.OWNER), body)


async def outcome(platform: Platform, runner: DeployRunner, shop: Any, deployment_id: str
                  ) -> DeploymentPublic:
    await runner.wait_idle()
    return await deployments.get_deployment(platform, shop.actor(Role.OWNER), deployment_id)


async def reach(runner: DeployRunner, hold: Hold) -> None:
    """Wait until the deployment makes the held call; fail at once, saying so, if it ends
    before (a loaded machine may take long to get there, but never forever)."""
    reached = asyncio.ensure_future(hold.reached.wait())
    ended = asyncio.ensure_future(asyncio.shield(runner.wait_idle()))
    await asyncio.wait({reached, ended}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    ended.cancel()
    reached.cancel()
    assert hold.reached.is_set(), f"the deployment ended without calling {hold.method}"


async def live_release(platform: Platform, runner: DeployRunner, shop: Any) -> str:
    """Deploy once; returns the release name every node now serves."""
    deployment_id = await start(platform, runner, shop)
    assert (await outcome(platform, runner, shop, deployment_id)).status == "succeeded"
    return deployment_id[:8]


async def serving(nodes: Nodes) -> dict[str, str]:
    return {name: await node.serves() for name, node in nodes.items()}


def running(nodes: Nodes) -> dict[str, set[str]]:
    """The releases of the containers running on each node."""
    return {name: set(node.docker.running().values()) for name, node in nodes.items()}


async def until(condition: Callable[[], bool], what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.01)


def everywhere(nodes: Nodes, value: Any) -> dict[str, Any]:
    return dict.fromkeys(nodes, value)


async def test_a_deploy_replaces_the_release_on_every_server(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    first = await live_release(platform, runner, shop)
    assert await serving(nodes) == everywhere(nodes, first)
    second = await live_release(platform, runner, shop)
    assert await serving(nodes) == everywhere(nodes, second)
    assert running(nodes) == everywhere(nodes, {second})


async def test_a_failure_after_two_of_three_switched_puts_all_back(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    old = await live_release(platform, runner, shop)
    before = {name: node.upstream_ports() for name, node in nodes.items()}
    nodes["node3"].docker.hold = hold = Hold("start", fail="the container exited at once")
    deployment_id = await start(platform, runner, shop)
    switched = ("node1", "node2")
    await until(lambda: all(nodes[n].upstream_ports() - before[n] for n in switched),
                "node1 and node2 switching")
    assert [await nodes[n].serves() for n in switched] == [deployment_id[:8]] * 2
    hold.release.set()
    result = await outcome(platform, runner, shop, deployment_id)
    assert (result.status, result.phase) == ("failed", "done")
    assert result.error == "node3: the container exited at once"
    assert await serving(nodes) == everywhere(nodes, old)
    assert running(nodes) == everywhere(nodes, {old})
    assert {name: node.upstream_ports() for name, node in nodes.items()} == before


async def test_a_crashing_server_among_several_fails_the_deploy_with_its_logs(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    old = await live_release(platform, runner, shop)
    deployment_id = await start(platform, runner, shop)
    nodes["node2"].docker.crash.add(f"deploy_{deployment_id[:8]}")  # before the task runs
    result = await outcome(platform, runner, shop, deployment_id)
    assert result.status == "failed"
    crash = (f"node2: web.1 (shop-web-{deployment_id[:8]}) stopped as soon as it started "
             "(exited); last log lines:\nTraceback (most recent call last):\n"
             "ImportError: no module named app")
    assert crash in result.error
    others = set(re.findall(r"node\d: ([^;]*)", result.error.replace(crash, "")))
    assert others <= {"stopped before switching because another server failed"}
    assert await serving(nodes) == everywhere(nodes, old)
    assert running(nodes) == everywhere(nodes, {old})
    events = await runner.events.since(deployment_id, 0)
    assert [e.data["state"] for e in events if e.data.get("step") == "revert"][-3:] == [
        "done"] * 3


def hold_connect(make_runner: Callable[..., DeployRunner]) -> tuple[DeployRunner, Hold]:
    """A runner whose connect to the agents never returns: it dies before phase one."""
    hold = Hold("connect")

    async def connect(server: ServerPublic) -> Any:
        await hold.meet("connect")
        raise AssertionError("a held connect only ends by cancellation")

    return make_runner(connect), hold


@pytest.mark.parametrize(("phase", "node", "method"), [
    ("", None, "connect"),
    ("pull", "node1", "pull"),  # the builder pulls the image source
    ("push", "node1", "push"),
    ("rollout", "node3", "start"),  # node1 and node2 have switched
])
async def test_a_deployment_interrupted_before_the_switch_is_taken_over_and_reverted(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner, phase: str,
        node: str | None, method: str) -> None:
    old = await live_release(platform, make_runner(), shop)
    before = {name: n.upstream_ports() for name, n in nodes.items()}
    if node is None:
        dying, hold = hold_connect(make_runner)
    else:
        dying, nodes[node].docker.hold = make_runner(), (hold := Hold(method))
    deployment_id = await start(platform, dying, shop)
    await reach(dying, hold)
    if phase == "rollout":
        await until(lambda: all(nodes[n].upstream_ports() - before[n]
                                for n in ("node1", "node2")), "node1 and node2 switching")
    await dying.shutdown(0)  # the control plane dies here
    interrupted = await deployments.get_deployment(platform, shop.actor(Role.OWNER),
                                                   deployment_id)
    assert (interrupted.status, interrupted.phase) == ("running", phase)

    successor = make_runner()
    assert await successor.recover() == [deployment_id]
    result = await outcome(platform, successor, shop, deployment_id)
    assert (result.status, result.error) == ("failed", (
        f"interrupted by a control-plane restart during phase {phase or 'start'}; the "
        "previous release keeps serving"))
    assert await serving(nodes) == everywhere(nodes, old)
    assert running(nodes) == everywhere(nodes, {old})
    assert await successor.recover() == []


async def test_a_deployment_interrupted_past_the_switch_is_taken_over_and_finished(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    old = await live_release(platform, make_runner(), shop)
    dying = make_runner()
    nodes["node1"].docker.hold = hold = Hold("stop")  # draining the old release
    deployment_id = await start(platform, dying, shop)
    await reach(dying, hold)
    await dying.shutdown(0)
    interrupted = await deployments.get_deployment(platform, shop.actor(Role.OWNER),
                                                   deployment_id)
    assert (interrupted.status, interrupted.phase) == ("running", "commit")
    assert running(nodes)["node1"] == {old, deployment_id[:8]}  # still draining
    assert await serving(nodes) == everywhere(nodes, deployment_id[:8])

    successor = make_runner()
    assert await successor.recover() == [deployment_id]
    result = await outcome(platform, successor, shop, deployment_id)
    assert (result.status, result.error, result.live) == ("succeeded", "", True)
    assert await serving(nodes) == everywhere(nodes, deployment_id[:8])
    assert running(nodes) == everywhere(nodes, {deployment_id[:8]})
