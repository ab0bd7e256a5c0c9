"""The bounds of the rows the platform writes by itself (core/retention.py), on SQLite and
PostgreSQL: alert deliveries and resolved alerts, dead queue jobs (aged from their death), and
webhook deliveries (never one still queued); and the settings that set them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import retention
from dockyard.core.platform import Platform
from dockyard.kernel.settings import Settings
from dockyard.models.alert_tables import Alert, AlertDelivery
from dockyard.models.base import new_id, utcnow
from dockyard.models.queue import OutboxEvent, OutboxStatus
from dockyard.models.tables import HookDelivery, RepoLink
from tests.alerts.rows import add, add_channel
from tests.conftest import Account
from tests.retention.test_retention import bound, service_of


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


async def column_of(platform: Platform, column: Any, order: Any) -> list[Any]:
    async def tx(s: AsyncSession) -> list[Any]:
        return list(await s.scalars(select(column).order_by(order)))

    return await platform.db.read(tx)


async def add_deliveries(platform: Platform, owner: Account, ages: list[float],
                         alert_id: str | None = None) -> None:
    """One test delivery per age (days), its event naming its age."""
    channel = await add_channel(platform, owner.workspace_id, "webhook", "http://hook.test/")
    await add(platform, *(AlertDelivery(
        id=new_id(), workspace_id=owner.workspace_id, channel_id=channel, alert_id=alert_id,
        event=f"{age:g}d", status="sent", created_at=days_ago(age)) for age in ages))


async def delivery_events(platform: Platform) -> list[str]:
    return await column_of(platform, AlertDelivery.event, AlertDelivery.created_at)


async def test_alert_deliveries_go_after_their_days_and_beyond_their_count(
        platform: Platform, owner: Account) -> None:
    await add_deliveries(platform, owner, [45, 31, 29, 3, 2, 1])
    pruned = await retention.prune_bound(platform.db, bound(platform, "alert deliveries"), 1)
    assert (pruned.rows, await delivery_events(platform)) == (2, ["29d", "3d", "2d", "1d"])
    by_count = bound(platform, "alert deliveries", alert_deliveries_max_rows=3)
    assert (await retention.prune_bound(platform.db, by_count, 2)).rows == 1
    assert await delivery_events(platform) == ["3d", "2d", "1d"]


def alert(owner: Account, key: str, resolved_days_ago: float | None) -> Alert:
    """Firing when `resolved_days_ago` is None."""
    first = days_ago((resolved_days_ago or 0) + 1)
    return Alert(id=new_id(), workspace_id=owner.workspace_id, key=key, kind="service-down",
                 severity="critical", subject=key, first_at=first, last_sent_at=first,
                 state="firing" if resolved_days_ago is None else "resolved",
                 resolved_at=None if resolved_days_ago is None else days_ago(resolved_days_ago))


async def test_resolved_alerts_go_with_their_deliveries_and_a_firing_one_stays(
        platform: Platform, owner: Account) -> None:
    rows = [alert(owner, "firing-for-ages", None), alert(owner, "old", 40),
            alert(owner, "older-of-two", 5), alert(owner, "newest", 1)]
    rows[0].first_at = days_ago(400)
    await add(platform, *rows)
    await add_deliveries(platform, owner, [0.5], alert_id=rows[1].id)  # goes with its alert
    await add_deliveries(platform, owner, [0.4], alert_id=rows[0].id)
    platform.settings = platform.settings.model_copy(update={"alert_deliveries_max_rows": 1})
    done = await retention.prune(platform)
    assert done["resolved alerts"].rows == 2
    assert await column_of(platform, Alert.key, Alert.first_at) == ["firing-for-ages", "newest"]
    assert await delivery_events(platform) == ["0.4d"]


async def add_jobs(platform: Platform, jobs: list[tuple[str, float, float | None]]) -> None:
    """(status, created days ago, finished days ago) each; the task names its place."""
    rows = [{"job_id": new_id(), "broker": "default", "queue": "default", "task": f"job{i}",
             "idempotency_key": new_id(), "payload": {}, "status": status,
             "created_at": days_ago(created),
             "finished_at": None if finished is None else days_ago(finished)}
            for i, (status, created, finished) in enumerate(jobs)]

    async def tx(s: AsyncSession) -> None:
        await s.execute(insert(OutboxEvent), rows)

    await platform.db.write(tx)


async def jobs_left(platform: Platform) -> list[str]:
    return await column_of(platform, OutboxEvent.task, OutboxEvent.id)


async def test_dead_jobs_are_aged_from_their_death_and_counted_apart(platform: Platform
                                                                     ) -> None:
    dead, pending = OutboxStatus.DEAD.value, OutboxStatus.PENDING.value
    await add_jobs(platform, [(dead, 45, 31), (dead, 90, 2), (pending, 90, None),
                              (OutboxStatus.DONE.value, 90, 89), (dead, 3, 1), (dead, 2, 0.5)])
    pruned = await retention.prune_bound(platform.db, bound(platform, "dead jobs"), 10)
    assert pruned.rows == 1
    assert await jobs_left(platform) == ["job1", "job2", "job3", "job4", "job5"]
    by_count = bound(platform, "dead jobs", dead_jobs_max_rows=2)
    assert (await retention.prune_bound(platform.db, by_count, 10)).rows == 1
    assert await jobs_left(platform) == ["job2", "job3", "job4", "job5"]  # others' own bounds


async def add_hook_deliveries(platform: Platform, owner: Account, link_id: str,
                              outcomes: list[tuple[str, float]]) -> None:
    await add(platform, *(HookDelivery(
        workspace_id=owner.workspace_id, link_id=link_id, provider="github",
        delivery_id=f"{outcome}-{age:g}", event="push", outcome=outcome,
        created_at=days_ago(age)) for outcome, age in outcomes))


async def link_of(platform: Platform, client: httpx.AsyncClient, owner: Account) -> str:
    service = await service_of(platform, client, owner)
    link = RepoLink(id=new_id(), workspace_id=owner.workspace_id, service_id=service.id,
                    user_id=owner.user_id, repo_url="https://git.test/shop.git",
                    repo_key="git.test/shop", secret_ciphertext="x")
    await add(platform, link)
    return link.id


async def test_webhook_deliveries_go_by_age_and_count_but_never_a_queued_one(
        platform: Platform, client: httpx.AsyncClient, owner: Account) -> None:
    link_id = await link_of(platform, client, owner)
    await add_hook_deliveries(platform, owner, link_id, [
        ("queued", 200), ("deployed", 100), ("superseded", 95), ("ignored", 3),
        ("queued", 2), ("deployed", 1)])
    pruned = await retention.prune_bound(platform.db, bound(platform, "webhook deliveries"), 1)
    names = HookDelivery.delivery_id
    assert pruned.rows == 2
    assert await column_of(platform, names, HookDelivery.created_at) == [
        "queued-200", "ignored-3", "queued-2", "deployed-1"]
    by_count = bound(platform, "webhook deliveries", other_events_max_rows=1)
    assert (await retention.prune_bound(platform.db, by_count, 1)).rows == 1
    assert await column_of(platform, names, HookDelivery.created_at) == [
        "queued-200", "queued-2", "deployed-1"]


def test_the_new_bounds_are_settings_with_the_retention_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings(data_dir=tmp_path)
    assert (defaults.alert_deliveries_days, defaults.alert_deliveries_max_rows,
            defaults.dead_jobs_days, defaults.dead_jobs_max_rows) == (30, 100_000, 30, 10_000)
    assert defaults.build_cache_seconds == 7 * 86400
    for name, value in (("ALERT_DELIVERIES_DAYS", "7"), ("ALERT_DELIVERIES_MAX_ROWS", "9"),
                        ("DEAD_JOBS_DAYS", "2.5"), ("DEAD_JOBS_MAX_ROWS", "11"),
                        ("BUILD_CACHE_DAYS", "0.5")):
        monkeypatch.setenv(f"DOCKYARD_{name}", value)
    settings = Settings(data_dir=tmp_path)
    assert (settings.alert_deliveries_days, settings.alert_deliveries_max_rows,
            settings.dead_jobs_days, settings.dead_jobs_max_rows) == (7, 9, 2.5, 11)
    assert settings.build_cache_seconds == 43200
