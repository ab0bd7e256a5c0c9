"""The evaluator against real rows (SQLite and PostgreSQL): each condition kind fires once,
repeats at most MAX_REPEATS times an hour apart, and resolves when its rows say it ended;
one-shot events are sent once and recorded resolved; another workspace's channels get
nothing."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import retention
from dockyard.core.alerts import evaluate
from dockyard.core.app_metrics_store import store_host, store_page
from dockyard.core.platform import Platform
from dockyard.deploy.plan import site_name
from dockyard.models.alert_tables import AlertDelivery, AlertRule
from dockyard.models.app_metrics import (
    HISTOGRAM_SIZE,
    HostStats,
    RequestBucket,
    RequestMetricsPage,
    histogram_index,
)
from dockyard.models.base import new_id, utcnow
from dockyard.models.enums import DeploymentStatus, ServerStatus, ServiceKind, SourceKind
from dockyard.models.stateful import Backup
from dockyard.models.tables import Deployment, Domain, Placement, Server, ServerEvent
from tests.alerts.conftest import MAX_REPEATS
from tests.alerts.rows import (
    World,
    add,
    add_channel,
    alerts,
    build_world,
    deliveries,
    keys,
    minutes,
    update,
)
from tests.conftest import Account


async def placements(platform: Platform, world: World, *traffic: str) -> list[str]:
    rows = [Placement(id=new_id(), workspace_id=world.workspace_id, service_id=world.service_id,
                      server_id=server, traffic=state)
            for server, state in zip(world.servers, traffic, strict=True)]
    await add(platform, *rows)
    return [row.id for row in rows]


async def test_an_alert_fires_once_repeats_within_its_bound_and_resolves(
        platform: Platform, owner: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    await add_channel(platform, owner.workspace_id, "slack", "https://hooks.example.com/x")
    first, second = await placements(platform, world, "down", "up")
    t0 = utcnow()
    assert (await evaluate(platform, t0)).fired == 0  # one copy still serves
    await update(platform, Placement, first, traffic="down")
    await update(platform, Placement, second, traffic="down")
    assert (await evaluate(platform, t0)).fired == 1
    assert (await evaluate(platform, minutes(30, t0))).repeated == 0
    for hour in range(1, MAX_REPEATS + 3):
        await evaluate(platform, minutes(61 * hour, t0))
    key = f"service-down:{world.service_id}"
    assert await alerts(platform) == [(key, "firing", MAX_REPEATS)]
    await update(platform, Placement, first, traffic="up")
    assert (await evaluate(platform, minutes(400, t0))).resolved == 1
    assert await alerts(platform) == [(key, "resolved", MAX_REPEATS)]
    assert [event for _, event, _ in await deliveries(platform)] == [
        "fired", *["repeat"] * MAX_REPEATS, "resolved"]
    await update(platform, Placement, first, traffic="down")
    assert (await evaluate(platform, minutes(401, t0))).fired == 1  # a new episode
    assert [state for _, state, _ in await alerts(platform)] == ["resolved", "firing"]


async def test_one_shot_events_are_sent_once_and_recorded_resolved(
        platform: Platform, owner: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    await add_channel(platform, owner.workspace_id, "discord", "https://discord.example.com/x")
    now = utcnow()

    def deployment(status: DeploymentStatus, ago: float, rollback_of: str | None = None
                   ) -> Deployment:
        return Deployment(id=new_id(), workspace_id=world.workspace_id,
                          service_id=world.service_id, source_kind=SourceKind.IMAGE,
                          status=status, rollback_of=rollback_of, error="health check failed",
                          finished_at=now - timedelta(minutes=ago))

    failed = deployment(DeploymentStatus.FAILED, 1)
    await add(platform, failed, deployment(DeploymentStatus.FAILED, 120),
              deployment(DeploymentStatus.SUCCEEDED, 1),
              deployment(DeploymentStatus.SUCCEEDED, 1, rollback_of=failed.id),
              Backup(workspace_id=world.workspace_id, project_id=world.project_id,
                     service_name="db", kind=ServiceKind.POSTGRES, status="failed",
                     error="disk full", finished_at=now),
              Backup(workspace_id=world.workspace_id, project_id=world.project_id,
                     service_name="db", kind=ServiceKind.POSTGRES, status="good",
                     finished_at=now))
    assert (await evaluate(platform, now)).fired == 3
    assert (await evaluate(platform, minutes(1, now))).fired == 0
    found = await alerts(platform)
    assert sorted(keys(found)) == ["backup-failed", "deploy-failed", "rollback"]
    assert {state for _, state, _ in found} == {"resolved"}
    assert sorted(event for _, event, _ in await deliveries(platform)) == ["fired"] * 3


async def test_server_unreachable_and_crash_looping(platform: Platform, owner: Account) -> None:
    """'re-created' is the kind the reconciler records (tests/deploy/test_reconcile.py)."""
    world = await build_world(platform, owner.workspace_id)
    now = utcnow()
    await update(platform, Server, world.servers[0], status=ServerStatus.UNREACHABLE,
                 status_reason="agent did not answer")
    await add(platform, *(ServerEvent(server_id=world.servers[1], kind="re-created",
                                      time=now - timedelta(minutes=m)) for m in (1, 5, 9)),
              *(ServerEvent(server_id=world.servers[0], kind="re-created",
                            time=now - timedelta(minutes=m)) for m in (1, 20, 30)))
    await evaluate(platform, now)
    assert sorted(keys(await alerts(platform))) == ["crash-loop", "server-unreachable"]
    await update(platform, Server, world.servers[0], status=ServerStatus.ACTIVE)
    assert (await evaluate(platform, minutes(8, now))).resolved == 2  # the oldest left the window
    assert {state for _, state, _ in await alerts(platform)} == {"resolved"}


async def test_certificates_failed_or_expiring(platform: Platform, owner: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    now = utcnow()

    def domain(host: str, **values: object) -> Domain:
        return Domain(workspace_id=world.workspace_id, service_id=world.service_id,
                      hostname=host, **values)

    failing = domain("a.example.com", certificate_status="failed",
                     certificate_error="challenge failed")
    await add(platform, failing,
              domain("b.example.com", certificate_status="live",
                     certificate_expires_at=now + timedelta(days=5)),
              domain("c.example.com", certificate_status="live",
                     certificate_expires_at=now + timedelta(days=60)),
              domain("d.example.com", tls="none"))
    await evaluate(platform, now)
    assert sorted(keys(await alerts(platform))) == ["certificate-expiring", "certificate-failed"]
    await update(platform, Domain, failing.id, certificate_status="live", certificate_error="",
                 certificate_expires_at=now + timedelta(days=80))
    assert (await evaluate(platform, now)).resolved == 1


def host(used_fraction: float) -> HostStats:
    total = 100 * 1024**3
    return HostStats(at=time.time(), cpus=2, cpu_percent=5, memory_total_bytes=2**30,
                     memory_used_bytes=2**29, disk_total_bytes=total,
                     disk_used_bytes=int(total * used_fraction), containers_running=3,
                     containers_stopped=1)


def page(requests: int, errors: int, latency_ms: float) -> RequestMetricsPage:
    """One closed bucket of shop/web's requests, as an agent reports it."""
    now = int(time.time())
    histogram = [0] * HISTOGRAM_SIZE
    histogram[histogram_index(latency_ms)] = requests
    bucket = RequestBucket(service=site_name("shop", "web"), release="", start=now - now % 10,
                           requests=requests, status_2xx=requests - errors, status_5xx=errors,
                           latency=histogram)
    return RequestMetricsPage(cursor=1, buckets=[bucket])


async def report(platform: Platform, world: World, fractions: tuple[float, float]) -> None:
    """What the metrics collector stores from the agents: host figures, one request page."""

    async def tx(s: AsyncSession) -> None:
        for server, fraction in zip(world.servers, fractions, strict=True):
            await store_host(s, server, host(fraction))
        await store_page(s, world.workspace_id, world.servers[0], 0, page(100, 30, 2000))

    await platform.db.write(tx)


async def test_disk_nearly_full_and_traffic_over_thresholds(
        platform: Platform, owner: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    await report(platform, world, (0.95, 0.5))
    await add(platform, AlertRule(workspace_id=world.workspace_id, service_id=world.service_id,
                                  max_5xx_rate=0.1, max_p95_ms=500, window_seconds=300))
    await evaluate(platform)
    found = await alerts(platform)
    assert sorted(keys(found)) == ["5xx-rate", "disk-full", "p95"]
    assert f"disk-full:{world.servers[0]}" in [key for key, _, _ in found]
    await update(platform, AlertRule, (await _rule_id(platform)), max_5xx_rate=None,
                 max_p95_ms=None)
    assert (await evaluate(platform)).resolved == 2


async def _rule_id(platform: Platform) -> str:
    return str(await platform.db.read(lambda s: s.scalar(select(AlertRule.id))))


async def test_another_workspace_s_channels_get_nothing(
        platform: Platform, owner: Account, stranger: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    await add_channel(platform, stranger.workspace_id, "slack", "https://hooks.example.com/s")
    await placements(platform, world, "down", "down")
    assert (await evaluate(platform)).fired == 1
    assert await deliveries(platform) == []
    await add_channel(platform, owner.workspace_id, "slack", "https://hooks.example.com/o")
    await update(platform, Placement, (await _any_placement(platform)), traffic="up")
    await evaluate(platform)
    assert [(event, status) for _, event, status in await deliveries(platform)] == [
        ("resolved", "pending")]


async def _any_placement(platform: Platform) -> str:
    return str(await platform.db.read(lambda s: s.scalar(select(Placement.id).limit(1))))


async def test_old_resolved_alerts_and_their_deliveries_are_pruned(
        platform: Platform, owner: Account) -> None:
    world = await build_world(platform, owner.workspace_id)
    await add_channel(platform, owner.workspace_id, "slack", "https://hooks.example.com/x")
    first, _ = await placements(platform, world, "down", "down")
    t0 = utcnow()
    await evaluate(platform, t0)
    await update(platform, Placement, first, traffic="up")
    await evaluate(platform, minutes(1, t0))  # resolved
    await update(platform, Placement, first, traffic="down")
    await evaluate(platform, minutes(40 * 24 * 60, t0))  # firing again, 40 days later
    resolved = next(b for b in retention.bounds(platform.settings, set())
                    if b.name == "resolved alerts")  # of the hourly retention job
    assert (await retention.prune_bound(platform.db, resolved, 10,
                                        minutes(40 * 24 * 60, t0))).rows == 1
    assert [state for _, state, _ in await alerts(platform)] == ["firing"]
    assert [event for _, event, _ in await deliveries(platform)] == ["fired"]
    left = await platform.db.read(lambda s: s.scalar(select(func.count(AlertDelivery.id))))
    assert left == 1  # the old episode's two went with it
