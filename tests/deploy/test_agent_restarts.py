"""Deploys ride through agent restarts: a call that cannot reach an agent is made again for
a bounded window, every call is safe to repeat, and an agent away for longer fails the step
with the server's name while the previous release keeps serving."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.agent.ports import same_request
from dockyard.core.platform import Platform
from dockyard.deploy.plan import container_spec
from dockyard.models.deploys import Effective
from tests import sqlite_only
from tests.deploy.conftest import SECRET, AgentNode
from tests.deploy.fake_docker import Hold
from tests.deploy.test_engine import (
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
WAIT = 30  # DOCKYARD_AGENT_WAIT_SECONDS of these tests' control planes


async def warnings(runner: Any, deployment_id: str) -> list[str]:
    return [e.message for e in await runner.events.since(deployment_id, 0)
            if e.kind == "warning"]


@pytest.mark.parametrize("method", ["pull", "start", "inspect_container", "stop"])
async def test_an_agent_away_for_a_moment_in_any_step_is_waited_for(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        method: str) -> None:
    runner = make_runner(agent_wait_seconds=WAIT)
    await live_release(platform, runner, shop)
    node = nodes["node2"]
    node.docker.hold = hold = Hold(method)
    deployment_id = await start(platform, runner, shop)
    await reach(runner, hold)
    node.network.away = True  # the agent restarts: refused for a while
    hold.release.set()
    await asyncio.sleep(0.6)
    node.network.away = False
    result = await outcome(platform, runner, shop, deployment_id)
    assert (result.status, result.error) == ("succeeded", "")
    assert await serving(nodes) == everywhere(nodes, deployment_id[:8])
    assert running(nodes) == everywhere(nodes, {deployment_id[:8]})
    said = await warnings(runner, deployment_id)
    assert said
    assert all(m.startswith("waiting for the node agent of node2") for m in said)


@pytest.mark.parametrize("method", ["create_container_from_config", "stop",
                                    "remove_container"])
async def test_a_call_the_agent_did_but_could_not_answer_is_repeated_safely(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        method: str) -> None:
    runner = make_runner(agent_wait_seconds=WAIT)
    await live_release(platform, runner, shop)
    node = nodes["node1"]
    node.docker.hold = hold = Hold(method)
    deployment_id = await start(platform, runner, shop)
    await reach(runner, hold)
    node.network.drop_answers = 1  # the agent does it, then dies before answering
    hold.release.set()
    result = await outcome(platform, runner, shop, deployment_id)
    assert (result.status, result.error) == ("succeeded", "")
    assert await serving(nodes) == everywhere(nodes, deployment_id[:8])
    assert running(nodes) == everywhere(nodes, {deployment_id[:8]})


async def test_an_agent_away_longer_than_the_window_fails_the_step_and_keeps_the_old_release(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    old = await live_release(platform, make_runner(), shop)
    runner = make_runner(agent_wait_seconds=1)
    nodes["node3"].network.away = True
    deployment_id = await start(platform, runner, shop)
    result = await outcome(platform, runner, shop, deployment_id)
    assert result.status == "failed"
    assert result.error.startswith(
        "node3 (step pull): the node agent did not come back: it did not answer for 1 s, the "
        "wait allowed (DOCKYARD_AGENT_WAIT_SECONDS); last: ConnectError")
    assert "could not fully revert: node3" in result.error
    nodes["node3"].network.away = False
    assert await serving(nodes) == everywhere(nodes, old)
    assert running(nodes) == everywhere(nodes, {old})


async def test_every_container_call_is_safe_to_repeat(nodes: Nodes) -> None:
    node = nodes["node1"]
    spec = container_spec("shop-web", "f" * 32, ImageRef(repository="r/a", tag="1"),
                          {"PORT": "8000"}, Effective())
    async with NodeAgentClient("http://node1.test", SECRET, transport=node.network) as agent:
        first = await agent.run_container(spec)
        again = await agent.run_container(spec)
        assert again == first
        assert list(node.docker.containers) == [spec.name]
        other = spec.model_copy(update={"env": {"PORT": "9000"}})
        with pytest.raises(AgentError) as refused:  # the same name for another container
            await agent.run_container(other)
        assert refused.value.status_code == 409
        for _ in range(2):
            await agent.stop_container(spec.name, 1)
            await agent.remove_container(spec.name)
        assert node.docker.containers == {}


def test_a_repeated_request_is_the_kept_spec_with_the_ports_the_agent_chose() -> None:
    asked = container_spec("s", "a" * 32, ImageRef(repository="r/a"), {}, Effective())
    chosen = asked.model_copy(update={"ports": [
        asked.ports[0].model_copy(update={"host_port": 41234})]})
    assert same_request(asked, chosen)
    assert same_request(chosen, chosen)
    assert not same_request(asked.model_copy(update={"cpus": 1.0}), chosen)
    assert not same_request(asked.model_copy(update={"ports": []}), chosen)
    other_port = chosen.model_copy(update={"ports": [
        asked.ports[0].model_copy(update={"host_port": 41235})]})
    assert not same_request(other_port, chosen)


async def test_the_control_plane_and_an_agent_dying_together_past_the_switch(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    await live_release(platform, make_runner(), shop)
    dying = make_runner(agent_wait_seconds=WAIT)
    nodes["node2"].docker.hold = hold = Hold("stop")  # draining the old release
    deployment_id = await start(platform, dying, shop)
    await reach(dying, hold)
    nodes["node2"].network.away = True  # the agent goes down with the control plane
    await dying.shutdown(0)
    hold.release.set()
    successor = make_runner(agent_wait_seconds=WAIT)
    assert await successor.recover() == [deployment_id]
    await asyncio.sleep(0.5)
    nodes["node2"].network.away = False
    result = await outcome(platform, successor, shop, deployment_id)
    assert (result.status, result.error) == ("succeeded", "")
    assert await serving(nodes) == everywhere(nodes, deployment_id[:8])
    assert running(nodes) == everywhere(nodes, {deployment_id[:8]})
    said = await warnings(successor, deployment_id)
    assert any(m.startswith("waiting for the node agent of node2") for m in said)
