"""Storing app request buckets: merged into minute rows once each, rolled into hours after a
day, pruned after 30 days; host figures latest and per minute (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics
from dockyard.core import app_metrics_store as store
from dockyard.core.platform import Platform
from dockyard.models.app_metric_tables import AppMetricHour, AppMetricMinute, HostStatsMinute
from dockyard.models.app_metrics import HostStats, RequestBucket, RequestMetricsPage
from tests.conftest import Account
from tests.logs.conftest import add_server, shop  # noqa: F401  (fixture)
from tests.metrics.app_metrics_helpers import T0, bucket, counts, rows, service_id


async def store_page(platform: Platform, workspace_id: str, server_id: str, after: int,
                     cursor: int, buckets: list[RequestBucket]) -> store.Stored:
    page = RequestMetricsPage(cursor=cursor, buckets=buckets)

    async def tx(s: AsyncSession) -> store.Stored:
        return await store.store_page(s, workspace_id, server_id, after, page)

    return await platform.db.write(tx)


async def test_buckets_of_a_minute_add_up_in_one_row_per_release(
        platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    first = [bucket(T0, 2), bucket(T0 + 10, 3, latency_ms=400, status_5xx=1),
             bucket(T0 + 10, 1, release="rel2"), bucket(T0 + 60, 4)]
    assert (await store_page(platform, shop.workspace_id, server.id, 0, 4, first)).buckets == 4
    await store_page(platform, shop.workspace_id, server.id, 4, 5, [bucket(T0 + 50, 5)])
    found = {(r.minute, r.release): r for r in await rows(platform, AppMetricMinute)}
    assert set(found) == {(T0, "rel1"), (T0, "rel2"), (T0 + 60, "rel1")}
    requests, errors, sent, latency = counts(found[T0, "rel1"])
    assert (requests, errors, sent, sum(latency)) == (10, 1, 1000, 10)
    assert found[T0, "rel1"].service_id == await service_id(platform)


async def test_a_page_is_stored_once_and_other_sites_are_left_out(
        platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    page = [bucket(T0, 2), bucket(T0, 7, site="elsewhere-web")]
    await store_page(platform, shop.workspace_id, server.id, 0, 2, page)
    again = await store_page(platform, shop.workspace_id, server.id, 0, 2, page)
    assert again.buckets == 0
    assert [counts(r)[0] for r in await rows(platform, AppMetricMinute)] == [2]

    async def cursor(s: AsyncSession) -> int:
        return await store.cursor_of(s, server.id)

    assert await platform.db.read(cursor) == 2


async def test_minutes_older_than_a_day_roll_into_hours_and_hours_expire(
        platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    buckets = [bucket(T0 + 60 * n, n + 1, latency_ms=5 * n) for n in range(3)]
    buckets += [bucket(T0 + 3600, 9), bucket(T0 + 86_400, 1)]
    await store_page(platform, shop.workspace_id, server.id, 0, 5, buckets)

    async def roll(s: AsyncSession, now: float) -> int:
        return await store.roll_up(s, now)

    assert await platform.db.write(lambda s: roll(s, T0 + 86_400 + 7200)) == 4
    assert [r.minute for r in await rows(platform, AppMetricMinute)] == [T0 + 86_400]
    hours = {r.hour: counts(r) for r in await rows(platform, AppMetricHour)}
    assert sorted(hours) == [T0, T0 + 3600]
    assert (hours[T0][0], sum(hours[T0][3])) == (6, 6)
    await platform.db.write(lambda s: roll(s, T0 + 3600 + 30 * 86_400 + 1))
    # the minute of day 2 is an hour row now; day 1's hours are gone
    assert [r.hour for r in await rows(platform, AppMetricHour)] == [T0 + 86_400]


def host(at: float, used: int) -> HostStats:
    return HostStats(at=at, cpus=2, cpu_percent=12.5, memory_total_bytes=4 << 30,
                     memory_used_bytes=1 << 30, disk_total_bytes=100, disk_used_bytes=used,
                     containers_running=3, containers_stopped=1)


async def test_host_figures_keep_the_latest_and_one_per_minute(
        platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    for at, used in ((T0 + 1, 10), (T0 + 30, 20), (T0 + 61, 30)):
        await platform.db.write(lambda s, at=at, used=used: store.store_host(
            s, server.id, host(at, used)))
    latest = await app_metrics.latest_host_stats(platform)
    assert latest[server.id].disk_used_bytes == 30
    minutes = {r.minute: r.stats for r in await rows(platform, HostStatsMinute)}
    assert sorted(minutes) == [T0, T0 + 60]
    assert HostStats.model_validate_json(minutes[T0]).disk_used_bytes == 20


async def test_service_traffic_sums_the_recent_minutes(
        platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    now = int(time.time()) // 10 * 10
    recent = [bucket(now - 20, 30, latency_ms=100, status_5xx=3), bucket(now - 10, 30)]
    await store_page(platform, shop.workspace_id, server.id, 0, 3,
                     [*recent, bucket(now - 7200, 500)])
    summary = await app_metrics.service_traffic(platform, await service_id(platform),
                                                timedelta(minutes=1))
    assert (summary.requests, summary.errors_5xx) == (60, 3)
    assert summary.error_rate == 0.05
    assert summary.p95_ms is not None
    assert 75 < summary.p95_ms <= 100
    first = int(time.time() - 60) // 60 * 60  # the window starts with its first minute
    expected = time.time() - first - app_metrics.COLLECTION_LAG
    assert summary.seconds == pytest.approx(expected, abs=2)
    assert summary.rate == pytest.approx(60 / summary.seconds)
