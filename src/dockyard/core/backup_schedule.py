"""When a stateful service's next scheduled backup is due, and which of its backups retention
lets go. Pure: no clock, no database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from croniter import croniter

from dockyard.models.fields import is_cron

__all__ = ["PROTECTED_TRIGGERS", "BackupFacts", "due", "expired", "is_cron", "next_run"]
PROTECTED_TRIGGERS = frozenset({"final", "safety"})  # never expired automatically


def next_run(schedule: str, after: datetime) -> datetime:
    """The first moment of `schedule` strictly after `after` (UTC)."""
    found: datetime = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    return found.astimezone(UTC)


def due(schedule: str, last_run: datetime, now: datetime) -> bool:
    """Whether a moment of `schedule` fell after `last_run` and no later than `now`. Moments
    missed while no worker ran make one backup, not one each."""
    return next_run(schedule, last_run) <= now


class BackupFacts(Protocol):
    """What retention reads of a backup (a Backup row has it)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def trigger(self) -> str: ...
    @property
    def started_at(self) -> datetime | None: ...


def expired(backups: Sequence[BackupFacts], retention: int) -> list[str]:
    """Ids of one service's backups that retention removes: good ones beyond the newest
    `retention` good ones (at least the newest is always kept), and failed ones older than
    the newest good one. Running, final and safety backups are never removed."""
    all_good = [_taken(b) for b in backups if b.status == "good"]
    if not all_good:
        return []
    newest_good = max(all_good)
    candidates = sorted((b for b in backups if b.trigger not in PROTECTED_TRIGGERS),
                        key=_taken, reverse=True)
    good = [b for b in candidates if b.status == "good"]
    too_many = [b.id for b in good[max(retention, 1):]]
    stale_failures = [b.id for b in candidates
                      if b.status == "failed" and _taken(b) < newest_good]
    return too_many + stale_failures


def _taken(backup: BackupFacts) -> datetime:
    return backup.started_at or datetime.min.replace(tzinfo=UTC)
