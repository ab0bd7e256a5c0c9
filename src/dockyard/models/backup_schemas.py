"""What the API takes and gives for backups of stateful services."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from dockyard.models.fields import CronSchedule, Name
from dockyard.models.schemas import Input, Output


class BackupCreate(Input):
    trigger: Literal["manual"] = "manual"


class BackupPublic(Output):
    """One backup; `verification` says what its check found (or why it failed)."""

    id: str
    service_name: str
    kind: str
    version: str
    trigger: str
    status: str
    storage: str
    size_bytes: int
    sha256: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None = None
    verification: str
    error: str


class BackupRestore(Input):
    """By default into a new service (`into`, else NAME-restored-YYYYMMDD); `overwrite`
    replaces the original's data and needs its name typed again in `confirm`."""

    into: Name | None = Field(default=None, description="Name of the new service")
    overwrite: bool = False
    confirm: str | None = Field(default=None, max_length=63, description=(
        "The service's name again, to overwrite it"))


class RestorePublic(Output):
    backup: str
    service: str
    overwritten: bool
    safety_backup: str | None = Field(default=None, description=(
        "The backup of the service's state just before it was overwritten"))


class BackupScheduleUpdate(Input):
    """A stateful service's backup schedule; what is left out stays as it is."""

    schedule: CronSchedule | None = Field(default=None, description=(
        "Five cron fields in UTC, like '0 3 * * *' (daily at 03:00)"))
    retention: int | None = Field(default=None, ge=1, le=1000, description=(
        "How many good backups to keep (manual and scheduled ones; final and safety "
        "backups are never removed automatically)"))


class BackupSchedulePublic(Output):
    schedule: str
    retention: int
    last_scheduled_at: datetime | None
    next_run_at: datetime
