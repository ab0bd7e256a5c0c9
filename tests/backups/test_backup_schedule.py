"""The backup schedule (cron, due, next run) and retention, pure and exact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from dockyard.core.backup_schedule import due, expired, is_cron, next_run
from dockyard.models.fields import CronSchedule

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


class Body(BaseModel):
    schedule: CronSchedule


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("0 3 * * *", T0, datetime(2026, 12, 1, 3, 0, tzinfo=UTC)),
    ("0 3 * * *", datetime(2026, 12, 1, 3, 0, tzinfo=UTC), datetime(2026, 12, 2, 3, 0, tzinfo=UTC)),
    ("*/30 * * * *", datetime(2026, 12, 1, 0, 10, tzinfo=UTC),
     datetime(2026, 12, 1, 0, 30, tzinfo=UTC)),
    ("15 2 * * 0", T0, datetime(2026, 12, 6, 2, 15, tzinfo=UTC)),  # 2026-12-06 is a Sunday
    ("0 0 1 * *", T0, datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
])
def test_next_run_is_the_first_moment_strictly_after(schedule: str, after: datetime,
                                                     expected: datetime) -> None:
    assert next_run(schedule, after) == expected


def test_schedules_are_in_utc_whatever_the_zone_of_the_moment() -> None:
    six_at_plus_two = datetime(2026, 12, 1, 6, 0, tzinfo=timezone(timedelta(hours=2)))
    assert next_run("0 5 * * *", six_at_plus_two) == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def test_due_once_a_moment_has_passed_and_once_for_many_missed() -> None:
    daily = "0 3 * * *"
    last = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert not due(daily, last, last)
    assert not due(daily, last, last + timedelta(hours=23, minutes=59))
    assert due(daily, last, last + timedelta(hours=24))
    assert due(daily, last, last + timedelta(days=5))  # five missed: one backup, then anew
    assert not due(daily, last + timedelta(days=5), last + timedelta(days=5, hours=1))


@pytest.mark.parametrize("schedule", ["0 3 * * *", "*/15 * * * *", "0 3 * * 1",
                                      "0 0 1,15 * *", "5 4 * * 1-5", "0 0 29 2 *",
                                      "0-30/10 8-18/2 1-7,15 */3 0,6", "00 03 * * 7"])
def test_five_field_schedules_are_accepted(schedule: str) -> None:
    assert is_cron(schedule)
    assert Body(schedule=schedule).schedule == schedule


def test_a_schedule_is_stored_with_single_spaces() -> None:
    assert Body(schedule="0  3 *   * *").schedule == "0 3 * * *"


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4,6 *"])
def test_a_schedule_that_never_comes_round_is_refused(schedule: str) -> None:
    assert not is_cron(schedule)
    with pytest.raises(ValidationError, match="never comes round"):
        Body(schedule=schedule)


@pytest.mark.parametrize("schedule", ["0 3 * * * *", "@daily", "61 * * * *", "0 3 * *",
                                      "0 3 * * *\n", "0 3 * * *\n0 4 * * *", "0\t3 * * *",
                                      "every day", "* * * * * 5", "0 25 * * *",
                                      "0 3 * * mon", "*/0 * * * *", "0 3 32 * *",
                                      "0 3 * 13 *", "0 3 * * 8", " 0 3 * * *"])
def test_other_schedules_are_refused_with_a_message(schedule: str) -> None:
    assert not is_cron(schedule)
    with pytest.raises(ValidationError, match="five fields of numbers: minute hour day-of-month"):
        Body(schedule=schedule)


@dataclass(frozen=True)
class B:
    id: str
    status: str
    trigger: str = "schedule"
    hours: int = 0

    @property
    def started_at(self) -> datetime:
        return T0 + timedelta(hours=self.hours)


def test_retention_keeps_the_newest_good_ones() -> None:
    backups = [B(f"g{h}", "good", hours=h) for h in range(10)]
    assert sorted(expired(backups, 7)) == ["g0", "g1", "g2"]
    assert expired(backups, 10) == []
    assert sorted(expired(backups, 9)) == ["g0"]


def test_the_only_good_backup_is_never_expired() -> None:
    assert expired([B("only", "good")], 1) == []
    assert expired([B("only", "good")], 0) == []
    assert sorted(expired([B("old", "good"), B("new", "good", hours=1)], 0)) == ["old"]


def test_failed_ones_older_than_the_newest_good_go_newer_ones_stay() -> None:
    backups = [B("f0", "failed", hours=0), B("g1", "good", hours=1),
               B("f2", "failed", hours=2), B("g3", "good", hours=3), B("f4", "failed", hours=4)]
    assert sorted(expired(backups, 7)) == ["f0", "f2"]


def test_without_a_good_backup_nothing_goes() -> None:
    assert expired([B("f0", "failed"), B("f1", "failed", hours=1)], 1) == []


def test_running_final_and_safety_backups_are_never_expired() -> None:
    backups = [B("final", "good", "final", 0), B("safety", "good", "safety", 1),
               B("failed-final", "failed", "final", 2), B("run", "running", hours=3),
               B("m4", "good", "manual", 4), B("s5", "good", hours=5)]
    assert expired(backups, 1) == ["m4"]


def test_a_good_final_backup_makes_older_failures_stale() -> None:
    backups = [B("f0", "failed"), B("final", "good", "final", 1)]
    assert expired(backups, 3) == ["f0"]
