"""`dockyard metrics` and `dockyard servers health` as a user runs them: the real console
script against a real control plane whose database holds what the collection job stores."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics_store as store
from dockyard.kernel.db import Database
from dockyard.kernel.settings import Settings
from dockyard.models.app_metrics import HostStats, RequestMetricsPage
from dockyard.models.enums import DeploymentStatus, SourceKind
from dockyard.models.tables import Deployment, Project, Server, Service
from tests.live import Live, ok, one_line_error
from tests.metrics.app_metrics_helpers import bucket


def five_minutes_ago() -> int:
    """A minute's start, five minutes back (taken when a test runs, not when it is collected:
    `--since 10m` must still cover it)."""
    return int(time.time()) // 60 * 60 - 300


def write(live: Live, work: Callable[[AsyncSession, Service], Awaitable[None]]) -> None:
    async def run() -> None:
        db = Database(Settings(data_dir=live.data_dir))

        async def tx(s: AsyncSession) -> None:
            service = await s.scalar(select(Service).join(Project))
            assert service is not None
            await work(s, service)

        try:
            await db.write(tx)
        finally:
            await db.dispose()

    asyncio.run(run())


def traffic_and_a_deploy(minute: int) -> Callable[[AsyncSession, Service], Awaitable[None]]:
    """Two minutes of release rel1 from `minute`, then ab12cd34 live at 90 s, a third minute."""

    async def work(s: AsyncSession, service: Service) -> None:
        await _traffic_and_a_deploy(s, service, minute)

    return work


async def _traffic_and_a_deploy(s: AsyncSession, service: Service, minute: int) -> None:
    server = Server(workspace_id=service.workspace_id, provider="manual", name="node-1")
    s.add_all([server, Deployment(
        id="ab12cd34" + "0" * 24, workspace_id=service.workspace_id, service_id=service.id,
        source_kind=SourceKind.IMAGE, status=DeploymentStatus.SUCCEEDED,
        finished_at=datetime.fromtimestamp(minute + 90, UTC))])
    await s.flush()
    buckets = [bucket(minute, 120, latency_ms=40), bucket(minute + 120, 60, release="ab12cd34")]
    page = RequestMetricsPage(cursor=2, buckets=buckets)
    await store.store_page(s, service.workspace_id, server.id, 0, page)
    await store.store_host(s, server.id, HostStats(
        at=time.time(), cpus=2, cpu_percent=7.5, memory_total_bytes=4_000, memory_used_bytes=1_000,
        disk_total_bytes=100, disk_used_bytes=91, containers_running=3, containers_stopped=0))


def test_metrics_prints_steps_with_the_deploy_marked(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop", "--image", "nginx:1.27"))
    minute = five_minutes_ago()
    write(live, traffic_and_a_deploy(minute))
    lines = ok(live.run("metrics", "-p", "shop", "-s", "web", "--since", "10m")).splitlines()
    assert lines[0].split()[:3] == ["time", "req", "rate/s"]
    at = datetime.fromtimestamp(minute, UTC).strftime("%H:%M")
    first = next(i for i, line in enumerate(lines) if f" {at} " in f" {line[11:]}")
    assert lines[first].split()[2:4] == ["120", "2.00"]
    marker = next(i for i, line in enumerate(lines) if line.startswith("-- deploy ab12cd34"))
    assert marker == first + 2  # after the step it went live in
    assert lines[marker + 1].split()[-1] == "ab12cd34"
    found = json.loads(ok(live.run("metrics", "-p", "shop", "-s", "web", "--by", "release",
                                   "--json")))
    assert {p["group"]: p["requests"] for p in found["points"]} == {"rel1": 120, "ab12cd34": 60}
    one_line_error(live.run("metrics", "-p", "shop", "-s", "web", "--since", "90d"),
                   "kept 30 days")


def test_servers_health_shows_the_latest_figures(live: Live) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop", "--image", "nginx:1.27"))
    write(live, traffic_and_a_deploy(five_minutes_ago()))
    shown = json.loads(ok(live.run("servers", "health", "node-1", "--json")))
    assert (shown["disk_used_fraction"], shown["containers_running"]) == (0.91, 3)
    assert "disk_used_fraction" in ok(live.run("servers", "health", "node-1"))
    one_line_error(live.run("servers", "health", "node-9"), "not found")
