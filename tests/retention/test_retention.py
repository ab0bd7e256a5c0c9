"""Database retention (core/retention.py) on SQLite and PostgreSQL: rows past a bound are
pruned down to it, in batches of their own, and the events of the releases a service can
still roll back to, and of a running deployment, stay whatever their age."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import retention
from dockyard.core.platform import Platform
from dockyard.kernel.queue import JobContext
from dockyard.kernel.queue.runner import ALL_TASKS, load_tasks
from dockyard.kernel.settings import Settings
from dockyard.models.base import new_id, utcnow
from dockyard.models.deployment_plan import DeploymentPlan, FromImage
from dockyard.models.deploys import Effective
from dockyard.models.enums import AuditAction, DeploymentStatus
from dockyard.models.tables import AuditEvent, Deployment, DeploymentEvent, Service
from tests.conftest import Account

DAYS = 30


def bound(platform: Platform, name: str, kept: set[str] | None = None, **settings: Any
          ) -> retention.Bound:
    changed = platform.settings.model_copy(update=settings)
    return next(b for b in retention.bounds(changed, kept or set()) if b.name == name)


async def audit_ids(platform: Platform) -> list[int]:
    async def tx(s: AsyncSession) -> list[int]:
        return list(await s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))

    return await platform.db.read(tx)


async def add_audit_rows(platform: Platform, count: int, age: timedelta = timedelta()) -> None:
    rows = [{"action": AuditAction.UPDATE, "entity_type": "projects", "entity_id": f"p{i}",
             "created_at": utcnow() - age} for i in range(count)]

    async def tx(s: AsyncSession) -> None:
        await s.execute(insert(AuditEvent), rows)

    await platform.db.write(tx)


async def test_audit_rows_beyond_the_count_are_pruned_to_it_two_per_batch(
        platform: Platform) -> None:
    await add_audit_rows(platform, 9)
    before = await audit_ids(platform)
    assert len(before) >= 9
    pruned = await retention.prune_bound(
        platform.db, bound(platform, "audit", audit_max_rows=4), batch=2)
    assert await audit_ids(platform) == before[-4:]
    assert pruned.rows == len(before) - 4
    assert pruned.batches == pruned.rows // 2 + 1  # full batches, then one that finds less


async def test_audit_rows_older_than_their_days_are_pruned(platform: Platform) -> None:
    await add_audit_rows(platform, 5, age=timedelta(days=400))
    old = await audit_ids(platform)
    await add_audit_rows(platform, 3, age=timedelta(days=300))
    pruned = await retention.prune_bound(platform.db, bound(platform, "audit"), batch=2)
    assert pruned.rows == len(old)
    assert pruned.batches == len(old) // 2 + 1
    assert len(await audit_ids(platform)) == 3


async def service_of(platform: Platform, client: httpx.AsyncClient, owner: Account) -> Service:
    for path, body in (("/api/v1/projects", {"name": "shop"}),
                       ("/api/v1/projects/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        assert answer.status_code == 201, answer.text

    async def tx(s: AsyncSession) -> Service:
        return await s.scalar(select(Service).where(Service.name == "web")) or Service()

    return await platform.db.read(tx)


def deployment(service: Service, status: DeploymentStatus, finished_days_ago: int) -> Deployment:
    deployment_id = new_id()
    plan = DeploymentPlan(source=FromImage(image="registry.test:5000/hello:1"),
                          image=f"registry.test:5000/shop/web:deploy_{deployment_id[:8]}",
                          params=Effective(keep_releases=2), servers=[], site="shop-web",
                          hosts=[])
    finished = None if status is DeploymentStatus.RUNNING else (
        utcnow() - timedelta(days=finished_days_ago))
    return Deployment(id=deployment_id, workspace_id=service.workspace_id,
                      service_id=service.id, **plan.to_columns(), status=status,
                      finished_at=finished)


async def add_deployments(platform: Platform, service: Service) -> list[str]:
    """Five releases (newest last), a failed deployment and a running one: three events each,
    all older than DAYS."""
    rows = [deployment(service, DeploymentStatus.SUCCEEDED, 100 - i) for i in range(5)]
    rows += [deployment(service, DeploymentStatus.FAILED, 50),
             deployment(service, DeploymentStatus.RUNNING, 0)]

    async def tx(s: AsyncSession) -> None:
        s.add_all(rows)
        await s.flush()
        s.add_all(DeploymentEvent(deployment_id=row.id, seq=seq, kind="phase", message="m",
                                  created_at=utcnow() - timedelta(days=DAYS + 10))
                  for row in rows for seq in (1, 2, 3))

    await platform.db.write(tx)
    return [row.id for row in rows]


async def events_by_deployment(platform: Platform) -> dict[str, int]:
    async def tx(s: AsyncSession) -> dict[str, int]:
        query = (select(DeploymentEvent.deployment_id, func.count())
                 .group_by(DeploymentEvent.deployment_id))
        return {deployment_id: count for deployment_id, count in await s.execute(query)}

    return await platform.db.read(tx)


async def deployment_count(platform: Platform) -> int:
    return await platform.db.read(lambda s: s.scalar(select(func.count(Deployment.id))))


async def test_old_deployment_events_go_except_those_of_releases_still_rolled_back_to(
        platform: Platform, client: httpx.AsyncClient, owner: Account) -> None:
    ids = await add_deployments(platform, await service_of(platform, client, owner))
    kept = await platform.db.read(lambda s: retention.kept_deployments(s, platform.settings))
    assert kept == {ids[3], ids[4], ids[6]}  # keep_releases=2 newest releases, the running one
    pruned = await retention.prune_bound(
        platform.db, bound(platform, "deployment events", kept, deployment_events_days=DAYS),
        batch=2)
    assert pruned.rows == 4 * 3
    assert pruned.batches == 7
    assert await events_by_deployment(platform) == dict.fromkeys(kept, 3)
    assert await deployment_count(platform) == 7  # the release history itself stays


async def test_deployment_events_beyond_the_count_go_but_never_those_kept(
        platform: Platform, client: httpx.AsyncClient, owner: Account) -> None:
    ids = await add_deployments(platform, await service_of(platform, client, owner))
    platform.settings = platform.settings.model_copy(update={
        "deployment_events_days": 1000, "deployment_events_max_rows": 4, "retention_batch": 3})
    done = await retention.prune(platform)
    assert done["deployment events"] == retention.Pruned(rows=12 - 4, batches=3)
    remaining = await events_by_deployment(platform)
    kept = (ids[3], ids[4], ids[6])
    assert {k: remaining[k] for k in kept} == dict.fromkeys(kept, 3)
    assert sum(remaining.values()) == 9 + 4  # the 4 newest of the others: in ids[5], ids[2]
    assert (remaining.get(ids[5]), remaining.get(ids[2])) == (3, 1)


def test_the_worker_runs_the_prune_job_every_hour() -> None:
    tasks = load_tasks(ALL_TASKS)
    assert tasks.get(retention.PRUNE_TASK) is not None
    assert [p.cron for p in tasks.periodic if p.task == retention.PRUNE_TASK] == ["41 * * * *"]


async def test_the_prune_job_as_the_worker_runs_it(platform: Platform, settings: Settings
                                                   ) -> None:
    await add_audit_rows(platform, 6)
    newest = (await audit_ids(platform))[-2:]
    changed = settings.model_copy(update={"audit_max_rows": 2, "retention_batch": 4})
    context = JobContext("worker-1", {"settings": changed, "db": platform.db})
    await retention.prune_job(context, {})
    assert await audit_ids(platform) == newest
