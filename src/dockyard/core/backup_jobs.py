"""Scheduled backups, as jobs of the worker. Every minute `backups.schedule` finds the running
stateful services whose cron schedule (StatefulInstance.backup_schedule) came due since
their last scheduled backup (or their creation), records the moment and enqueues one
`backups.scheduled` job for each in the same transaction, so each moment makes one backup
however many workers run. That job takes the backup (core.backups.create_backup, trigger
"schedule", as the workspace's first owner) and then applies the service's retention: the
expired backups' stored files are deleted, then their records. The schedule job also
removes what puts that died left in the store. Here too: reading and changing a service's
schedule and retention."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import logcollect
from dockyard.core.authz import Actor, Permission
from dockyard.core.backup_schedule import due, expired, next_run
from dockyard.core.backup_store import BackupStore, store_for
from dockyard.core.platform import Platform
from dockyard.core.stateful import locate
from dockyard.kernel.audit import UNAUDITED, delete_recorded
from dockyard.kernel.errors import DockyardError
from dockyard.kernel.queue import JobContext, Tasks, add_event
from dockyard.models.backup_schemas import BackupSchedulePublic, BackupScheduleUpdate
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.stateful import Backup, StatefulInstance
from dockyard.models.tables import Membership, Project, Service

log = logging.getLogger("dockyard.backups")
SCHEDULE_TASK = "backups.schedule"
SCHEDULED_TASK = "backups.scheduled"
PARTIAL_AGE = timedelta(hours=6)  # a put unfinished this long died with its process
# Takes one backup: (platform, actor, project name, service name).
TakeBackup = Callable[[Platform, Actor, str, str], Awaitable[object]]


@dataclass(frozen=True)
class Scheduled:
    """A stateful service whose scheduled backup is to be taken, and who takes it."""

    actor: Actor
    project: str
    service: str
    retention: int


async def enqueue_due(p: Platform, now: datetime | None = None) -> list[str]:
    """Enqueue a backup of every running stateful service whose schedule is due; their ids."""
    moment = (now or utcnow()).replace(second=0, microsecond=0)

    async def tx(s: AsyncSession) -> list[str]:
        running = select(StatefulInstance).where(StatefulInstance.state == "running")
        found = [i for i in await s.scalars(running) if _is_due(i, moment)]
        for instance in found:
            instance.last_scheduled_at = moment
            await add_event(s, SCHEDULED_TASK, {"service_id": instance.service_id},
                            idempotency_key=f"backup:{instance.service_id}:{moment:%Y%m%d%H%M}")
        return [i.service_id for i in found]

    return await p.db.write(tx, info=UNAUDITED)  # each backup it starts is recorded itself


def _is_due(instance: StatefulInstance, moment: datetime) -> bool:
    try:
        return due(instance.backup_schedule, instance.last_scheduled_at or instance.created_at,
                   moment)
    except (ValueError, KeyError) as exc:  # croniter's errors; the API refuses such schedules
        log.warning("backup schedule %r of service %s is not valid: %s",
                    instance.backup_schedule, instance.service_id, exc)
        return False


async def backup_schedule(p: Platform, actor: Actor, project: str, service: str
                          ) -> BackupSchedulePublic:
    """A stateful service's backup schedule, retention and next scheduled moment."""
    actor.require(Permission.READ)
    located = await p.db.read(lambda s: locate(s, actor, project, service))
    return _schedule_public(located.instance)


async def set_backup_schedule(p: Platform, actor: Actor, project: str, service: str,
                              body: BackupScheduleUpdate) -> BackupSchedulePublic:
    """Change a stateful service's backup schedule or retention (the next run of the
    retention applies a smaller count)."""
    actor.require(Permission.WRITE)

    async def tx(s: AsyncSession) -> BackupSchedulePublic:
        instance = (await locate(s, actor, project, service)).instance
        instance.backup_schedule = body.schedule or instance.backup_schedule
        instance.backup_retention = body.retention or instance.backup_retention
        return _schedule_public(instance)

    return await p.db.write(tx, info=actor.audit_info)


def _schedule_public(instance: StatefulInstance) -> BackupSchedulePublic:
    last = instance.last_scheduled_at
    return BackupSchedulePublic(
        schedule=instance.backup_schedule, retention=instance.backup_retention,
        last_scheduled_at=last,
        next_run_at=next_run(instance.backup_schedule, last or instance.created_at))


async def take_scheduled(p: Platform, service_id: str, take: TakeBackup | None = None
                         ) -> None:
    """Take the scheduled backup of a service (unless it was deleted meanwhile), then apply
    its retention; a failed backup is recorded as failed by the backup itself."""
    target = await p.db.read(lambda s: _scheduled(s, service_id))
    if target is None:
        return
    try:
        await (take or _create_backup)(p, target.actor, target.project, target.service)
    except DockyardError as exc:
        log.warning("scheduled backup of %s/%s failed: %s", target.project, target.service,
                    exc.message)
    await apply_retention(p, service_id, target.retention)


async def _scheduled(s: AsyncSession, service_id: str) -> Scheduled | None:
    query = (select(StatefulInstance, Service, Project)
             .join(Service, Service.id == StatefulInstance.service_id)
             .join(Project, Project.id == Service.project_id)
             .where(StatefulInstance.service_id == service_id))
    row = (await s.execute(query)).first()
    if row is None:
        return None
    instance, service, project = row
    owner = await _first_owner(s, service.workspace_id)
    return Scheduled(owner, project.name, service.name, instance.backup_retention)


async def _first_owner(s: AsyncSession, workspace_id: str) -> Actor:
    query = (select(Membership).where(Membership.workspace_id == workspace_id,
                                      Membership.role == Role.OWNER)
             .order_by(Membership.created_at))
    owner = (await s.scalars(query)).first()
    if owner is None:
        raise DockyardError(f"workspace {workspace_id} has no owner to take its backups")
    return Actor(owner.user_id, workspace_id, Role.OWNER)


async def _create_backup(p: Platform, actor: Actor, project: str, service: str) -> object:
    from dockyard.core.backups import create_backup  # it needs the deploy engine
    from dockyard.core.deployments import new_runner

    return await create_backup(p, new_runner(p), actor, project, service, trigger="schedule")


async def apply_retention(p: Platform, service_id: str, retention: int,
                          store: BackupStore | None = None) -> list[str]:
    """Delete the service's backups that retention lets go (stored file, then record); a
    file that cannot be deleted keeps its record, to be tried again next time."""
    backups = await p.db.read(lambda s: _backups_of(s, service_id))
    store = store or store_for(p.settings)
    gone = []
    for backup in (b for b in backups if b.id in set(expired(backups, retention))):
        try:
            if backup.location:
                await store.delete(backup.location)
        except Exception as exc:  # another backup's retention must still run
            log.warning("stored backup %s not deleted: %s", backup.location, exc)
            continue
        gone.append(backup.id)
    await p.db.write(lambda s: _forget(s, gone))
    return gone


async def _backups_of(s: AsyncSession, service_id: str) -> list[Backup]:
    return list(await s.scalars(select(Backup).where(Backup.service_id == service_id)))


async def _forget(s: AsyncSession, backup_ids: list[str]) -> None:
    for backup in await s.scalars(select(Backup).where(Backup.id.in_(backup_ids))):
        await delete_recorded(s, backup)


async def sweep_unfinished(p: Platform) -> int:
    """Remove what puts into the backup store that died left (temporary files, multipart
    uploads), once they are PARTIAL_AGE old."""
    older_than = time.time() - PARTIAL_AGE.total_seconds()
    try:
        return await store_for(p.settings).sweep_unfinished(older_than)
    except Exception as exc:  # the schedule matters more; the next run tries again
        log.warning("unfinished backup uploads not swept: %s", exc)
        return 0


TASKS = Tasks()
TASKS.every(SCHEDULE_TASK, "* * * * *", SCHEDULE_TASK)


@TASKS.task(SCHEDULE_TASK, max_attempts=1, coalesce=True)
async def schedule_job(context: JobContext, payload: dict[str, Any]) -> None:
    p = logcollect._platform(context)
    await enqueue_due(p)
    await sweep_unfinished(p)


@TASKS.task(SCHEDULED_TASK, max_attempts=1)  # a retry would be another failed backup
async def scheduled_job(context: JobContext, payload: dict[str, Any]) -> None:
    await take_scheduled(logcollect._platform(context), str(payload["service_id"]))
