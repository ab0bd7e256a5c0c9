"""Scheduled backups on real SQLite and Postgres rows: which services are due, one job each
through the outbox, then the backup and the service's retention (files and records)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from dockyard.cli.worker import BACKUP_TASKS, LOG_TASKS, RECONCILE_TASKS
from dockyard.core import backup_jobs
from dockyard.core.authz import Actor
from dockyard.core.backup_store import DirectoryStore, store_for
from dockyard.core.platform import Platform
from dockyard.kernel.errors import DockyardError
from dockyard.kernel.queue import JobContext
from dockyard.kernel.queue.runner import BUILTIN_TASKS, load_tasks
from dockyard.kernel.settings import Settings
from dockyard.models.base import utcnow
from dockyard.models.enums import Role, ServiceKind
from dockyard.models.queue import OutboxEvent
from dockyard.models.stateful import Backup, StatefulInstance
from dockyard.models.tables import Project, Server, Service
from tests.conftest import Account

NOW = datetime.fromisoformat("2026-12-02T10:00:00+00:00")
_ports = iter(range(20000, 30000))


async def add_stateful(p: Platform, owner: Account, name: str, *, created: datetime,
                       schedule: str = "0 3 * * *", state: str = "running",
                       retention: int = 7) -> str:
    async def tx(s: Any) -> str:
        project = (await s.scalars(select(Project).where(Project.name == "shop"))).first()
        if project is None:
            project = Project(workspace_id=owner.workspace_id, name="shop")
            server = Server(workspace_id=owner.workspace_id, provider="manual", name="node-1")
            s.add_all([project, server])
            await s.flush()
        server = (await s.scalars(select(Server))).one()
        service = Service(workspace_id=owner.workspace_id, project_id=project.id, name=name,
                          kind=ServiceKind.POSTGRES)
        s.add(service)
        await s.flush()
        s.add(StatefulInstance(
            service_id=service.id, workspace_id=owner.workspace_id, server_id=server.id,
            port=next(_ports), image="dockyard/postgres:test", password_ciphertext="x",
            state=state, backup_schedule=schedule, backup_retention=retention,
            created_at=created))
        return str(service.id)

    return await p.db.write(tx)


async def add_backup(p: Platform, service_id: str, hours_ago: float, status: str = "good",
                     trigger: str = "schedule", stored: bool = True) -> str:
    async def tx(s: Any) -> Backup:
        service = await s.get_one(Service, service_id)
        backup = Backup(workspace_id=service.workspace_id, project_id=service.project_id,
                        service_id=service_id, service_name=service.name, kind=service.kind,
                        trigger=trigger, status=status,
                        started_at=utcnow() - timedelta(hours=hours_ago))
        s.add(backup)
        await s.flush()
        return backup

    backup = await p.db.write(tx)
    if stored:
        location = f"{backup.workspace_id}/{backup.project_id}/{backup.service_name}/{backup.id}"
        await store_for(p.settings).put(location, single(b"sealed"))
        await p.db.write(lambda s: _locate(s, backup.id, location))
    return str(backup.id)


async def _locate(s: Any, backup_id: str, location: str) -> None:
    (await s.get_one(Backup, backup_id)).location = location


async def single(data: bytes) -> Any:
    yield data


async def jobs(p: Platform) -> list[dict[str, Any]]:
    query = select(OutboxEvent).where(OutboxEvent.task == backup_jobs.SCHEDULED_TASK)
    return [e.payload for e in await p.db.read(lambda s: s.scalars(query))]


async def backups_left(p: Platform, service_id: str) -> list[Backup]:
    query = select(Backup).where(Backup.service_id == service_id).order_by(Backup.started_at)
    return list(await p.db.read(lambda s: s.scalars(query)))


async def test_due_services_get_one_job_each_and_their_moment_recorded(
        platform: Platform, owner: Account) -> None:
    daily = await add_stateful(platform, owner, "db", created=NOW - timedelta(days=2))
    fresh = await add_stateful(platform, owner, "fresh", created=NOW + timedelta(seconds=20),
                               schedule="*/30 * * * *")  # after 10:00, its first is 10:30
    await add_stateful(platform, owner, "stopped", created=NOW - timedelta(days=2),
                       state="stopped")
    half_hourly = await add_stateful(platform, owner, "cache", schedule="*/30 * * * *",
                                     created=NOW - timedelta(minutes=31))

    async def due_at(moment: datetime) -> list[str]:
        return sorted(await backup_jobs.enqueue_due(platform, moment))

    assert await due_at(NOW + timedelta(seconds=42)) == sorted([daily, half_hourly])
    assert sorted(j["service_id"] for j in await jobs(platform)) == sorted([daily, half_hourly])
    instance = await platform.db.read(lambda s: s.get_one(StatefulInstance, daily))
    assert instance.last_scheduled_at == NOW
    assert await due_at(NOW + timedelta(seconds=50)) == []
    assert len(await jobs(platform)) == 2
    assert await due_at(NOW + timedelta(minutes=30)) == sorted([fresh, half_hourly])
    assert await due_at(NOW + timedelta(hours=16)) == sorted([fresh, half_hourly])
    assert await due_at(NOW + timedelta(hours=17)) == sorted([daily, fresh, half_hourly])
    assert len(await jobs(platform)) == 9


async def test_a_scheduled_backup_then_retention_deletes_files_and_records(
        platform: Platform, owner: Account) -> None:
    service = await add_stateful(platform, owner, "db", created=NOW, retention=2)
    old = [await add_backup(platform, service, hours_ago=h) for h in (72, 48, 24)]
    failed_old = await add_backup(platform, service, hours_ago=60, status="failed",
                                  stored=False)
    final = await add_backup(platform, service, hours_ago=100, trigger="final")
    taken: list[tuple[Actor, str, str]] = []

    async def take(p: Platform, actor: Actor, project: str, name: str) -> None:
        taken.append((actor, project, name))
        await add_backup(p, service, hours_ago=0)

    await backup_jobs.take_scheduled(platform, service, take)
    assert taken == [(Actor(owner.user_id, owner.workspace_id, Role.OWNER), "shop", "db")]
    left = await backups_left(platform, service)
    assert [b.id for b in left][:2] == [final, old[2]]
    assert len(left) == 3
    assert failed_old not in [b.id for b in left]
    store = store_for(platform.settings)
    for backup_id in old[:2]:
        assert not await store.exists(f"{owner.workspace_id}/{left[0].project_id}/db/{backup_id}")
    for backup in left:
        assert await store.exists(backup.location)


async def test_a_failed_scheduled_backup_still_applies_retention(
        platform: Platform, owner: Account) -> None:
    service = await add_stateful(platform, owner, "db", created=NOW, retention=1)
    await add_backup(platform, service, hours_ago=48)
    newest = await add_backup(platform, service, hours_ago=24)

    async def take(p: Platform, actor: Actor, project: str, name: str) -> None:
        await add_backup(p, service, hours_ago=0, status="failed", stored=False)
        raise DockyardError("backup failed: verification failed")

    await backup_jobs.take_scheduled(platform, service, take)
    left = await backups_left(platform, service)
    assert left[0].id == newest
    assert [b.status for b in left] == ["good", "failed"]  # the newer failure stays visible


async def test_a_service_deleted_before_its_job_ran_is_left_alone(
        platform: Platform, owner: Account) -> None:
    async def take(p: Platform, actor: Actor, project: str, name: str) -> None:
        raise AssertionError("no backup of a deleted service")

    await backup_jobs.take_scheduled(platform, "0" * 32, take)


async def test_a_file_that_cannot_be_deleted_keeps_its_record(
        platform: Platform, owner: Account) -> None:
    service = await add_stateful(platform, owner, "db", created=NOW, retention=1)
    stuck = await add_backup(platform, service, hours_ago=48, stored=False)
    await add_backup(platform, service, hours_ago=24)
    store = store_for(platform.settings)
    assert isinstance(store, DirectoryStore)
    (store.root / "stuck" / "inside").mkdir(parents=True)  # a directory: unlink fails
    await platform.db.write(lambda s: _locate(s, stuck, "stuck"))
    assert await backup_jobs.apply_retention(platform, service, 1) == []
    assert stuck in [b.id for b in await backups_left(platform, service)]


@pytest.mark.parametrize("name", [backup_jobs.SCHEDULE_TASK, backup_jobs.SCHEDULED_TASK])
def test_the_backup_jobs_load_as_a_worker_registry(name: str) -> None:
    tasks = load_tasks((BUILTIN_TASKS, LOG_TASKS, RECONCILE_TASKS, BACKUP_TASKS))
    assert tasks.get(name) is not None
    assert [p.cron for p in tasks.periodic if p.task == backup_jobs.SCHEDULE_TASK] == [
        "* * * * *"]


async def test_the_schedule_job_sweeps_what_dead_puts_left(platform: Platform,
                                                           owner: Account) -> None:
    assert await backup_jobs.sweep_unfinished(platform) == 0  # no backup directory yet
    store = store_for(platform.settings)
    assert isinstance(store, DirectoryStore)
    await store.put("ws/p/db/1", single(b"kept"))
    leftover = store.path("ws/p/db/.2.abc.partial")
    leftover.write_bytes(b"half")
    hours_ago = time.time() - backup_jobs.PARTIAL_AGE.total_seconds() - 60
    os.utime(leftover, (hours_ago, hours_ago))
    assert await backup_jobs.sweep_unfinished(platform) == 1
    assert not leftover.exists()
    assert await store.exists("ws/p/db/1")


async def test_the_schedule_job_as_the_worker_runs_it(platform: Platform, owner: Account,
                                                      settings: Settings) -> None:
    due_service = await add_stateful(platform, owner, "db", created=utcnow() - timedelta(days=2))
    context = JobContext("worker-1", {"settings": settings, "db": platform.db})
    await backup_jobs.schedule_job(context, {})
    assert await jobs(platform) == [{"service_id": due_service}]
