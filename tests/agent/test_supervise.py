"""The agent's supervisor on a real agent process and a real nginx pair (no Docker): each
layer SIGKILLed (master and workers) comes back by itself, with an event; health from the
data path names what is broken while it is."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from dockyard.agent import auth, process
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.datapath import probe_name, site_problem
from dockyard.agent.models import NodeHealth, Site, SiteHealth, SupervisionEvent, Upstream
from dockyard.agent.proxy import (
    Nginx,
    NginxInstance,
    children_of,
    kill_leftover_workers,
    leftover_workers,
)
from dockyard.agent.supervise import EventLog, backoff
from tests.agent.conftest import (
    SECRET,
    AgentProcess,
    eventually_true,
    require_nginx,
    spawn_agent,
)
from tests.agent.test_switch import serving

HOST = "shop.test"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Real agents (plain HTTP, no Docker) with their nginx; all stopped afterwards."""
    require_nginx()
    agents: list[AgentProcess] = []

    def start(**env: str) -> AgentProcess:
        state = tmp_path / f"agent-{len(agents)}"
        agents.append(spawn_agent(state, auth.derive_agent_key(SECRET), tls=False, env=env))
        return agents[-1]

    yield start
    for agent in agents:
        agent.stop()


@pytest.fixture
async def shop(started: Callable[..., AgentProcess]
               ) -> AsyncIterator[tuple[AgentProcess, NodeAgentClient]]:
    """An agent serving the site `shop` (a local backend answering "a") through both layers."""
    async with AsyncExitStack() as stack:
        agent = started()
        client = await stack.enter_async_context(NodeAgentClient(agent.url, SECRET))
        upstream = stack.enter_context(serving("a"))
        await client.apply_site(Site(service="shop", server_names=[HOST], upstreams=[upstream]))
        assert (await visit(agent)).text == "a"
        yield agent, client


async def visit(agent: AgentProcess) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        return await http.get(f"http://127.0.0.1:{agent.proxy.layout.http_port}/",
                              headers={"Host": HOST})


async def answers(agent: AgentProcess) -> bool:
    try:
        return (await visit(agent)).text == "a"
    except httpx.HTTPError:
        return False


async def until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.05)


def kill_layer(layer: NginxInstance, *, workers: bool = True) -> set[int]:
    """SIGKILL a layer's master (and, by default, every worker), as an OOM kill would."""
    master = layer.running_pid()
    assert master is not None
    doomed = {master} | (children_of(master) if workers else set())
    for pid in doomed:
        os.kill(pid, signal.SIGKILL)
    if workers:  # also one forked after the listing (a reload starts its workers one by one)
        doomed |= leftover_workers(layer.layout)
        kill_leftover_workers(layer.layout)
    eventually_true(lambda: not any(process.is_running(pid) for pid in doomed),
                    "the killed processes exiting")
    return doomed


def restarts(health: NodeHealth, layer: str) -> list[SupervisionEvent]:
    return [e for e in health.events if e.process == layer and e.action == "restarted"]


async def restarted(client: NodeAgentClient, layer: str) -> bool:
    return bool(restarts(await client.node_health(), layer))


@pytest.mark.parametrize("layer", ["edge", "switch"])
async def test_a_killed_layer_is_restarted_and_the_site_answers_again(
    shop: tuple[AgentProcess, NodeAgentClient], layer: str
) -> None:
    agent, client = shop
    killed = kill_layer(getattr(agent.proxy, layer))
    await until(lambda: answers(agent), f"the site answering after the {layer} was killed")
    await until(lambda: restarted(client, f"{layer} nginx"), "the restart event")
    health = await client.node_health()
    assert health.problems == []
    assert [s.status for s in health.sites] == [200]
    [event] = restarts(health, f"{layer} nginx")
    assert "its master had died; started again in" in event.detail
    assert getattr(agent.proxy, layer).running_pid() not in killed


async def test_workers_left_by_a_killed_master_are_replaced(
    shop: tuple[AgentProcess, NodeAgentClient]
) -> None:
    """Workers outlive their master and keep its ports: the new master could not bind."""
    agent, client = shop
    old_workers = agent.proxy.edge.workers()
    kill_layer(agent.proxy.edge, workers=False)
    await until(lambda: restarted(client, "edge nginx"), "the restart event")
    assert await answers(agent)
    assert not agent.proxy.edge.workers() & old_workers


def occupy(port: int) -> socket.socket:
    holder = socket.socket()
    holder.bind(("0.0.0.0", port))  # noqa: S104 - where the edge listens
    holder.listen()
    return holder


async def test_a_failed_restart_is_recorded_and_tried_again(
    shop: tuple[AgentProcess, NodeAgentClient]
) -> None:
    agent, client = shop
    kill_layer(agent.proxy.edge)
    with occupy(agent.proxy.layout.http_port):
        async def failed() -> bool:
            events = (await client.node_health()).events
            return any(e.action == "restart failed" for e in events)

        await until(failed, "a failed restart recorded", within=30)
    await until(lambda: answers(agent), "the site answering once the port is free", within=30)
    [failure, *_] = [e for e in (await client.node_health()).events
                     if e.action == "restart failed"]
    assert failure.process == "edge nginx"
    assert "Address already in use" in failure.detail


async def test_health_names_the_broken_layer_while_nothing_restarts_it(
    started: Callable[..., AgentProcess]
) -> None:
    agent = started(DOCKYARD_AGENT_SUPERVISE_SECONDS="0")
    async with NodeAgentClient(agent.url, SECRET) as client:
        with serving("a") as upstream:
            site = Site(service="shop", server_names=[HOST], upstreams=[upstream])
            await client.apply_site(site)
            kill_layer(agent.proxy.switch)
            assert (await client.node_health()).problems == [
                "switch nginx not running", "site shop: HTTP 502"]
            kill_layer(agent.proxy.edge)
            assert (await client.node_health()).problems == [
                "switch nginx not running", "edge nginx not running",
                "edge nginx not answering: connection refused"]
            agent.proxy.reload()  # what the supervisor would have done
            assert (await client.node_health()).problems == []


def test_the_pause_between_restarts_doubles_up_to_its_bound() -> None:
    assert [backoff(n, 30) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_events_survive_a_restart_of_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    log = EventLog(path, keep=2)
    for number in range(3):
        log.add(SupervisionEvent(time="2026-12-02T00:00:00Z", process="edge nginx",
                                 action="restarted", detail=f"restart {number}"))
    assert [e.detail for e in EventLog(path, keep=2).recent()] == ["restart 1", "restart 2"]


async def test_restoring_reloads_only_a_layer_whose_files_changed(nginx: Nginx) -> None:
    """An agent restart must not reload the edge for nothing: a reload closes its idle
    client connections, which a strict client sees as failures."""
    with serving("a") as upstream:
        site = Site(service="shop", server_names=[HOST], upstreams=[upstream])
        nginx.apply(site, [site])
        edge, switch = nginx.edge.workers(), nginx.switch.workers()
        nginx.restore([site])
        assert (nginx.edge.workers(), nginx.switch.workers()) == (edge, switch)
        nginx.switch.layout.site_file("shop").write_text("# edited by hand\n")
        nginx.restore([site])
        assert nginx.edge.workers() == edge
        assert nginx.switch.workers().isdisjoint(switch)


async def test_an_agent_whose_main_configuration_differs_puts_it_in_place_at_restart(
        nginx: Nginx) -> None:
    """How a new default nginx configuration reaches a running server: the upgraded agent
    renders it, finds the file on disk different (written by the older agent), and reloads
    that layer with it; no new snapshot."""
    with serving("a") as upstream:
        site = Site(service="shop", server_names=[HOST], upstreams=[upstream])
        nginx.apply(site, [site])
        rendered = nginx.edge.layout.conf.read_text()
        older = rendered.replace("server_names_hash_bucket_size 128;",
                                 "server_names_hash_bucket_size 64;")
        assert older != rendered
        nginx.edge.layout.conf.write_text(older)
        edge = nginx.edge.workers()
        nginx.restore([site])
        assert nginx.edge.layout.conf.read_text() == rendered
        assert nginx.edge.workers().isdisjoint(edge)


def test_a_site_is_asked_by_a_name_it_answers_to() -> None:
    upstream = Upstream(host="127.0.0.1", port=8000)
    shop = Site(service="shop", server_names=["shop.test", "www.shop.test"], upstreams=[upstream])
    taker = Site(service="api", server_names=["shop.test"], upstreams=[upstream])
    assert probe_name(shop, [shop]) == "shop.test"
    assert probe_name(shop, [shop, taker]) == "www.shop.test"


def test_only_failures_of_the_data_path_are_problems() -> None:
    answers = [SiteHealth(service="a", status=404, error=None),
               SiteHealth(service="b", status=500, error=None),
               SiteHealth(service="c", status=503, error=None),
               SiteHealth(service="d", status=None, error="connection refused")]
    assert [site_problem(a) for a in answers] == [
        None, None, "site c: HTTP 503", "site d: connection refused"]
