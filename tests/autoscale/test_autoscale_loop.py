"""The autoscaler's rounds against real SQLite and PostgreSQL, with traffic and host figures
stored through the app-metrics store, and real scale deployments through the in-process
agents (real nginx, fake Docker): replicas really change, and each change or block is kept."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import autoscale, processes
from dockyard.core import autoscale_policies as policies
from dockyard.core.app_metrics_store import store_host, store_page
from dockyard.core.platform import Platform
from dockyard.models.app_metric_tables import AppMetricMinute
from dockyard.models.app_metrics import (
    BUCKET_SECONDS,
    HostStats,
    RequestBucket,
    RequestMetricsPage,
    ServiceUsage,
    empty_histogram,
)
from dockyard.models.autoscale import AutoscaleSet
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.processes import ScaleRequest
from dockyard.models.tables import Membership, Server
from tests import sqlite_only
from tests.deploy.conftest import HOST
from tests.deploy.test_engine import MakeRunner, Nodes, live_release, outcome

database_url = sqlite_only.database_url  # nothing here depends on the database kind

MIB = 1 << 20
SITE = "shop-web"


def web_replicas(nodes: Nodes) -> dict[str, int]:
    """How many web containers run on each node."""
    return {name: sum(1 for c in node.docker.containers.values() if c.state == "running")
            for name, node in nodes.items()}


async def server_ids(platform: Platform) -> dict[str, str]:
    async def tx(s: AsyncSession) -> dict[str, str]:
        return {row.name: row.id for row in await s.scalars(select(Server))}

    return await platform.db.read(tx)


async def store_requests(platform: Platform, shop: Any, requests: int) -> None:
    """`requests` answered in the last closed bucket, on each server (as collected)."""
    start = int(time.time()) // BUCKET_SECONDS * BUCKET_SECONDS - BUCKET_SECONDS
    latency = empty_histogram()
    latency[3] = requests
    bucket = RequestBucket(service=SITE, release="", start=start, requests=requests,
                           status_2xx=requests, latency=latency)
    for server_id in (await server_ids(platform)).values():
        page = RequestMetricsPage(cursor=1, buckets=[bucket])

        async def tx(s: AsyncSession, server_id: str = server_id,
                     page: RequestMetricsPage = page) -> None:
            await store_page(s, shop.workspace_id, server_id, 0, page)

        await platform.db.write(tx)


async def forget_requests(platform: Platform) -> None:
    """The traffic ends: what was stored leaves the window (as if a minute had passed)."""
    async def tx(s: AsyncSession) -> None:
        await s.execute(delete(AppMetricMinute))

    await platform.db.write(tx)


async def store_hosts(platform: Platform, free_mib: int, replica_mib: int = 100,
                      cpu: float = 10.0, age: float = 0) -> None:
    for server_id in (await server_ids(platform)).values():
        stats = HostStats(at=time.time() - age, cpus=2, cpu_percent=5,
                          memory_total_bytes=8192 * MIB,
                          memory_used_bytes=(8192 - free_mib) * MIB, disk_total_bytes=1 << 40,
                          disk_used_bytes=1 << 30, containers_running=1, containers_stopped=0,
                          services=[ServiceUsage(service=SITE, containers=1, cpu_percent=cpu,
                                                 memory_bytes=replica_mib * MIB)])

        async def tx(s: AsyncSession, server_id: str = server_id, stats: HostStats = stats
                     ) -> None:
            await store_host(s, server_id, stats)

        await platform.db.write(tx)


async def set_policy(platform: Platform, shop: Any, **fields: Any) -> None:
    body = AutoscaleSet.model_validate({"min": 1, "max": 3, "target_rps": 10, **fields})
    await policies.set_policy(platform, shop.actor(Role.OWNER), "shop", "web", body)


async def decisions(platform: Platform, shop: Any) -> list[tuple[int, int, str, str]]:
    """(from, to, reason, outcome) of the kept decisions, oldest first."""
    rows = await policies.decisions(platform, shop.actor(Role.OWNER), "shop", "web", 100)
    return [(d.from_replicas, d.to_replicas, d.reason, d.outcome) for d in reversed(rows)]


def started(outcome_text: str) -> str:
    assert outcome_text.startswith("started deployment "), outcome_text
    return outcome_text.removeprefix("started deployment ")


async def test_traffic_scales_out_to_max_and_a_steady_round_keeps_nothing(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    await set_policy(platform, shop)
    await store_hosts(platform, free_mib=4096)
    await store_requests(platform, shop, 100_000)
    now = utcnow()
    [decision] = await autoscale.evaluate_all(platform, runner, now)
    assert (decision.current, decision.to, decision.blocked) == (1, 3, "")
    [(low, high, reason, kept)] = await decisions(platform, shop)
    assert (low, high) == (1, 3)
    assert reason.endswith("req/s over 3 replicas > target 10/replica (at max 3)"), reason
    result = await outcome(platform, runner, shop, started(kept))
    assert result.status == "succeeded", result.error
    assert web_replicas(nodes) == {"node1": 3, "node2": 3, "node3": 3}
    [steady] = await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=20))
    assert steady.steady
    assert steady.to == 3
    assert len(await decisions(platform, shop)) == 1


async def test_without_traffic_it_scales_in_one_step_at_a_time_after_the_cool_down(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    scaled = await processes.start_scale(platform, runner, shop.actor(Role.OWNER), "shop", "web",
                                         ScaleRequest(scale={"web": 3}))
    assert (await outcome(platform, runner, shop, scaled)).status == "succeeded"
    await set_policy(platform, shop, cooldown_seconds=60)
    await store_hosts(platform, free_mib=4096)
    now = utcnow()
    await autoscale.evaluate_all(platform, runner, now)
    assert (await outcome(platform, runner, shop, started(
        (await decisions(platform, shop))[-1][3]))).status == "succeeded"
    assert web_replicas(nodes) == {"node1": 2, "node2": 2, "node3": 2}
    for later in (20, 40):  # within the cool-down: one block kept, not one per round
        [waiting] = await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=later))
        assert waiting.blocked == "cool-down: scaling in waits 60 s after a change"
    await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=61))
    kept = await decisions(platform, shop)
    assert [(k[0], k[1], k[2]) for k in kept] == [
        (3, 2, "0.0 req/s over 9 replicas < target 10/replica (at min 1)"),
        (2, 1, "0.0 req/s over 6 replicas < target 10/replica (at min 1)"),
        (2, 1, "0.0 req/s over 6 replicas < target 10/replica (at min 1)")]
    assert kept[1][3] == "cool-down: scaling in waits 60 s after a change"
    assert (await outcome(platform, runner, shop, started(kept[2][3]))).status == "succeeded"
    assert web_replicas(nodes) == {"node1": 1, "node2": 1, "node3": 1}
    [floor] = await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=200))
    assert floor.steady  # never below min
    assert floor.to == 1


async def test_memory_caps_scaling_out(platform: Platform, shop: Any, nodes: Nodes,
                                       make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    await set_policy(platform, shop, target_rps=None, target_cpu=50, max=4)
    await store_hosts(platform, free_mib=200, replica_mib=256, cpu=400.0)
    now = utcnow()
    for later in (0, 20):  # blocked twice, kept once
        [capped] = await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=later))
        assert capped.to == 4
    assert await decisions(platform, shop) == [(
        1, 4, "1200% CPU over 3 replicas > target 50%/replica (at max 4)",
        "capped by memory: servers have 200 MiB free, a replica needs 256 MiB")]
    assert web_replicas(nodes) == {"node1": 1, "node2": 1, "node3": 1}
    await store_hosts(platform, free_mib=600, replica_mib=256, cpu=400.0)
    [partly] = await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=40))
    assert (partly.to, partly.blocked) == (3, "")
    assert partly.reason.endswith(
        "; capped by memory: servers have 600 MiB free, a replica needs 256 MiB")
    last = (await decisions(platform, shop))[-1]
    assert (await outcome(platform, runner, shop, started(last[3]))).status == "succeeded"
    assert web_replicas(nodes) == {"node1": 3, "node2": 3, "node3": 3}


async def test_it_does_not_scale_while_a_deployment_runs_nor_for_a_former_member(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner(agent_wait_seconds=60)
    await live_release(platform, runner, shop)
    await set_policy(platform, shop)
    await store_hosts(platform, free_mib=4096)
    await store_requests(platform, shop, 100_000)
    nodes["node2"].network.away = True  # the rollout below waits for it
    busy = await processes.start_scale(platform, runner, shop.actor(Role.OWNER), "shop", "web",
                                       ScaleRequest(scale={"web": 1}))
    now = utcnow()
    await autoscale.evaluate_all(platform, runner, now)
    nodes["node2"].network.away = False
    assert (await outcome(platform, runner, shop, busy)).status == "succeeded"

    async def leave(s: AsyncSession) -> None:
        await s.execute(delete(Membership).where(Membership.user_id == shop.user_id))

    await platform.db.write(leave)
    await autoscale.evaluate_all(platform, runner, now + timedelta(seconds=20))
    assert [k[3] for k in await decisions(platform, shop)] == [
        "not scaled: a deployment of the service is running",
        "not scaled: policy owner no longer a member"]
    assert web_replicas(nodes) == {"node1": 1, "node2": 1, "node3": 1}


async def test_two_api_replicas_evaluate_a_policy_once(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    first, second = make_runner(), make_runner()
    await live_release(platform, first, shop)
    await set_policy(platform, shop)
    await store_hosts(platform, free_mib=4096)
    await store_requests(platform, shop, 100_000)
    now = utcnow()
    rounds = await asyncio.gather(autoscale.evaluate_all(platform, first, now),
                                  autoscale.evaluate_all(platform, second, now))
    assert sorted(len(r) for r in rounds) == [0, 1]
    [kept] = await decisions(platform, shop)
    for runner in (first, second):
        await runner.wait_idle()
    assert web_replicas(nodes) == {"node1": 3, "node2": 3, "node3": 3}
    assert kept[1] == 3


async def test_the_api_loop_scales_by_itself_and_zero_seconds_turns_it_off(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    await set_policy(platform, shop)
    await store_hosts(platform, free_mib=4096)
    await store_requests(platform, shop, 100_000)
    off = replace(platform, settings=platform.settings.model_copy(update={"autoscale_seconds": 0}))
    await asyncio.wait_for(autoscale.run_forever(off, runner), 5)  # returns at once
    assert await decisions(platform, shop) == []
    often = replace(platform, settings=platform.settings.model_copy(
        update={"autoscale_seconds": 0.2}))
    loop = asyncio.create_task(autoscale.run_forever(often, runner))
    try:
        kept = await until_decided(platform, shop)
    finally:
        loop.cancel()
    assert (await outcome(platform, runner, shop, started(kept[3]))).status == "succeeded"
    assert web_replicas(nodes) == {"node1": 3, "node2": 3, "node3": 3}


async def until_decided(platform: Platform, shop: Any) -> tuple[int, int, str, str]:
    async with asyncio.timeout(30):
        while not (kept := await decisions(platform, shop)):  # noqa: ASYNC110  (state in the DB)
            await asyncio.sleep(0.1)
    return kept[0]


async def test_scaling_in_fails_no_request(platform: Platform, shop: Any, nodes: Nodes,
                                            make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    scaled = await processes.start_scale(platform, runner, shop.actor(Role.OWNER), "shop", "web",
                                         ScaleRequest(scale={"web": 2}))
    assert (await outcome(platform, runner, shop, scaled)).status == "succeeded"
    await set_policy(platform, shop)
    await store_hosts(platform, free_mib=4096)
    done = asyncio.Event()
    port = nodes["node1"].nginx.layout.http_port
    load = asyncio.gather(*(strict_client(port, done) for _ in range(4)))
    [decision] = await autoscale.evaluate_all(platform, runner, utcnow())
    assert (decision.current, decision.to) == (2, 1)
    await runner.wait_idle()
    done.set()
    clients = await load
    assert web_replicas(nodes) == {"node1": 1, "node2": 1, "node3": 1}
    assert sum(answered for answered, _ in clients) > 0
    assert [failure for _, failed in clients for failure in failed] == []


async def strict_client(port: int, done: asyncio.Event) -> tuple[int, list[str]]:
    """Requests through the node's nginx, one after another, without retries, until `done`."""
    answered, failed = 0, []
    async with httpx.AsyncClient(trust_env=False, timeout=5,
                                 transport=httpx.AsyncHTTPTransport(retries=0)) as http:
        while not done.is_set():
            try:
                answer = await http.get(f"http://127.0.0.1:{port}/", headers={"Host": HOST})
            except httpx.HTTPError as exc:
                failed.append(repr(exc))
                continue
            answered += 1
            if answer.status_code != 200:
                failed.append(f"HTTP {answer.status_code}")
    return answered, failed


async def test_without_recent_figures_from_the_servers_nothing_changes(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await live_release(platform, runner, shop)
    await set_policy(platform, shop)
    await store_requests(platform, shop, 100_000)
    await store_hosts(platform, free_mib=4096, age=autoscale.FRESH_SECONDS + 5)
    [stale] = await autoscale.evaluate_all(platform, runner, utcnow())
    assert (stale.to, stale.blocked) == (
        3, "not scaled: no recent figures from every server of the service")
    assert web_replicas(nodes) == {"node1": 1, "node2": 1, "node3": 1}
    assert [k[3] for k in await decisions(platform, shop)] == [stale.blocked]
