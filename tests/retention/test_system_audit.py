"""The audit trail is people's: what the platform writes by itself, over and over (health
polls, metrics collection, backup schedule ticks), leaves no history row; an action it takes
on someone's behalf (an autoscale decision) leaves what a person scaling by hand would: the
replicas saved, the deployment's start and outcome, as the member who set the policy. On
SQLite and PostgreSQL, the engine reaching a server whose agent does not answer."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import agents, autoscale, backup_jobs, deployments, fleet
from dockyard.core import autoscale_policies as policies
from dockyard.core.app_metrics_store import store_host, store_page
from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.models.app_metrics import (
    BUCKET_SECONDS,
    HostStats,
    RequestBucket,
    RequestMetricsPage,
    ServiceUsage,
    empty_histogram,
)
from dockyard.models.autoscale import AutoscaleSet
from dockyard.models.base import new_id, utcnow
from dockyard.models.enums import DeploymentStatus, Role, ServerStatus, ServiceKind
from dockyard.models.stateful import StatefulInstance
from dockyard.models.tables import AuditEvent, Placement, Server, Service
from tests.agent.conftest import free_port
from tests.alerts.rows import add
from tests.conftest import Account
from tests.retention.test_retention import deployment, service_of

POLLS = 12
MIB = 1 << 20


async def history_since(platform: Platform, after: int) -> list[tuple[str, str, str | None]]:
    """(action, entity type, actor user id) of the history rows after id `after`."""
    async def tx(s: AsyncSession) -> list[tuple[str, str, str | None]]:
        query = (select(AuditEvent.action, AuditEvent.entity_type, AuditEvent.actor_user_id)
                 .where(AuditEvent.id > after).order_by(AuditEvent.id))
        return [(action.value, kind, actor) for action, kind, actor in await s.execute(query)]

    return await platform.db.read(tx)


async def last_history_id(platform: Platform) -> int:
    return await platform.db.read(lambda s: s.scalar(select(func.max(AuditEvent.id)))) or 0


async def placed_server(platform: Platform, service: Service) -> str:
    """An active server running the service, whose agent does not answer."""
    server = await register_server(platform, service.workspace_id, name="node1",
                                   provider="manual", ip="127.0.0.1", agent_port=free_port(),
                                   agent_insecure_http=True)
    await add(platform, Placement(workspace_id=service.workspace_id, service_id=service.id,
                                  server_id=server.id))

    async def activate(s: AsyncSession) -> None:
        (await s.get_one(Server, server.id)).status = ServerStatus.ACTIVE

    await platform.db.write(activate)
    await agents.secret_for(platform, service.workspace_id)  # made once, on first use
    return server.id


async def poll(platform: Platform, server_id: str, round_: int) -> None:
    """What the health poller records, changing every round (a flapping server)."""
    seen = [fleet.Observation(server_id, ServerStatus.UNREACHABLE, "1.0", "agent unreachable"),
            fleet.Observation(server_id, ServerStatus.DEGRADED, "1.0", f"site {round_} down"),
            fleet.Observation(server_id, ServerStatus.ACTIVE, "1.0")][round_ % 3]
    await fleet.record(platform, seen)


async def collect_metrics(platform: Platform, workspace_id: str, server_id: str, round_: int
                          ) -> None:
    """What one run of the metrics job stores: a page of request buckets, the host figures."""
    start = int(time.time()) // BUCKET_SECONDS * BUCKET_SECONDS - BUCKET_SECONDS
    latency = empty_histogram()
    latency[3] = 1000
    page = RequestMetricsPage(cursor=round_ + 1, buckets=[RequestBucket(
        service="shop-web", release="", start=start, requests=1000, status_2xx=1000,
        latency=latency)])
    stats = HostStats(at=time.time(), cpus=2, cpu_percent=5, memory_total_bytes=8192 * MIB,
                      memory_used_bytes=1024 * MIB, disk_total_bytes=1 << 40,
                      disk_used_bytes=1 << 30, containers_running=1, containers_stopped=0,
                      services=[ServiceUsage(service="shop-web", containers=1, cpu_percent=5,
                                             memory_bytes=100 * MIB)])

    async def tx(s: AsyncSession) -> None:
        await store_page(s, workspace_id, server_id, round_, page)
        await store_host(s, server_id, stats)

    await platform.db.write(tx)


async def scheduled_backups(platform: Platform, owner: Account, service: Service,
                            server_id: str) -> None:
    """A running redis whose backup schedule is due every minute."""
    redis = Service(id=new_id(), workspace_id=owner.workspace_id,
                    project_id=service.project_id, name="redis", kind=ServiceKind.REDIS)
    instance = StatefulInstance(service_id=redis.id, workspace_id=owner.workspace_id,
                                server_id=server_id, port=free_port(), image="redis:7",
                                password_ciphertext=platform.box.encrypt("pw"),
                                backup_schedule="* * * * *",
                                created_at=utcnow() - timedelta(days=1))
    await add(platform, redis)
    await add(platform, instance)


async def test_system_writes_leave_no_history_and_an_autoscale_action_its_deployment(
        platform: Platform, client: httpx.AsyncClient, owner: Account) -> None:
    service = await service_of(platform, client, owner)
    server_id = await placed_server(platform, service)
    await add(platform, deployment(service, DeploymentStatus.SUCCEEDED, 1))  # the live release
    await scheduled_backups(platform, owner, service, server_id)
    body = AutoscaleSet(min=1, max=3, target_rps=10)
    await policies.set_policy(platform, owner.actor(Role.OWNER), "shop", "web", body)
    before = await last_history_id(platform)
    now = utcnow()
    for round_ in range(POLLS):
        await poll(platform, server_id, round_)
        await collect_metrics(platform, owner.workspace_id, server_id, round_)
    for minute in range(3):
        assert await backup_jobs.enqueue_due(platform, now + timedelta(minutes=minute)) != []
    assert await history_since(platform, before) == []
    await poll(platform, server_id, 2)  # active again, so the autoscaler acts
    runner = deployments.new_runner(platform)
    [decision] = await autoscale.evaluate_all(platform, runner, now)
    await runner.wait_idle()
    assert (decision.current, decision.to, decision.blocked) == (1, 3, "")
    assert await history_since(platform, before) == [  # the replicas, the deployment's start
        ("update", "services", owner.user_id), ("create", "deployments", owner.user_id),
        ("update", "deployments", owner.user_id)]  # and its outcome (failed: no agent)
