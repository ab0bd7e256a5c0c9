"""Backups of a stateful service: take one (verified before it counts), list, restore
(into a new service by default), delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.deploys import RunnerDep
from dockyard.api.routes.params import ProjectName, ServiceName
from dockyard.api.routing import api_router
from dockyard.core import backup_jobs, backup_restore, backups
from dockyard.models import fields
from dockyard.models.backup_schemas import (
    BackupCreate,
    BackupPublic,
    BackupRestore,
    BackupSchedulePublic,
    BackupScheduleUpdate,
    RestorePublic,
)

BackupId = Annotated[fields.IdPrefix, Path(description="A backup's id or its first 4+ digits")]
router = api_router(prefix="/projects/{project}/stateful/{service}/backups",
                   tags=["backups"], responses=WRITE_RESPONSES)


@router.post("", status_code=201, operation_id="create_backup",
             summary="Back up a stateful service now (dumped, stored, then verified)")
async def create(project: ProjectName, service: ServiceName, body: BackupCreate,
                 platform: PlatformDep, actor: ActorDep, runner: RunnerDep) -> BackupPublic:
    return await backups.create_backup(platform, runner, actor, project, service, body.trigger)


@router.get("", operation_id="list_backups",
            summary="Backups of a service, newest first: size, duration, verification")
async def list_all(project: ProjectName, service: ServiceName, platform: PlatformDep,
                   actor: ActorDep) -> list[BackupPublic]:
    return await backups.list_backups(platform, actor, project, service)


@router.post("/{backup}/restore", operation_id="restore_backup",
             summary="Restore a backup into a new service, or over the original if asked")
async def restore(project: ProjectName, service: ServiceName, backup: BackupId,
                  body: BackupRestore, platform: PlatformDep, actor: ActorDep,
                  runner: RunnerDep) -> RestorePublic:
    return await backup_restore.restore_backup(platform, runner, actor, project, service,
                                               backup, body)


@router.delete("/{backup}", status_code=204, operation_id="delete_backup",
               summary="Delete a backup and its stored file")
async def delete(project: ProjectName, service: ServiceName, backup: BackupId,
                 platform: PlatformDep, actor: ActorDep) -> None:
    await backups.delete_backup(platform, actor, project, service, backup)


@router.get("/schedule", operation_id="get_backup_schedule",
            summary="When the service is backed up on schedule, and how many are kept")
async def get_schedule(project: ProjectName, service: ServiceName, platform: PlatformDep,
                       actor: ActorDep) -> BackupSchedulePublic:
    return await backup_jobs.backup_schedule(platform, actor, project, service)


@router.put("/schedule", operation_id="set_backup_schedule",
            summary="Change the backup schedule (cron, UTC) or the retention count")
async def set_schedule(project: ProjectName, service: ServiceName, body: BackupScheduleUpdate,
                       platform: PlatformDep, actor: ActorDep) -> BackupSchedulePublic:
    return await backup_jobs.set_backup_schedule(platform, actor, project, service, body)
