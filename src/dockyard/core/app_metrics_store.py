"""Storing app request buckets and host figures: an agent's 10 s buckets are added into one
row per (service, server, release, minute) in the transaction that moves the server's cursor
(so a bucket counts once); minute rows older than a day are added into hour rows, which are
kept 30 days."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.logcollect import _services_by_site
from dockyard.models.app_metric_tables import (
    AppMetricHour,
    AppMetricMinute,
    AppMetricTotal,
    HostStatsLatest,
    HostStatsMinute,
    RequestMetricsCursor,
)
from dockyard.models.app_metrics import (
    HostStats,
    RequestBucket,
    RequestMetricsPage,
    add_histograms,
    empty_histogram,
)
from dockyard.models.base import utcnow

MINUTE, HOUR = 60, 3600
FINE_SECONDS = 24 * HOUR
HOURLY_SECONDS = 30 * 24 * HOUR
COUNTS = ("requests", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "bytes_sent")
CountRow = AppMetricMinute | AppMetricHour


@dataclass(frozen=True)
class Stored:
    buckets: int
    lost: int


async def cursor_of(s: AsyncSession, server_id: str) -> int:
    return await s.scalar(select(RequestMetricsCursor.cursor)
                          .where(RequestMetricsCursor.server_id == server_id)) or 0


async def store_page(s: AsyncSession, workspace_id: str, server_id: str, after: int,
                     page: RequestMetricsPage) -> Stored:
    """Add the page's buckets into minute rows and move the cursor, unless another run has
    stored this page already (the cursor is no longer `after`)."""
    cursor = await s.get(RequestMetricsCursor, server_id, with_for_update=True)
    if cursor is None:
        cursor = RequestMetricsCursor(server_id=server_id, cursor=0, lost=0)
        s.add(cursor)
    if cursor.cursor != after:
        return Stored(0, 0)
    services = await _services_by_site(s, workspace_id)
    merged = _by_minute(b for b in page.buckets if b.service in services)
    for (site, _, minute), bucket in merged.items():
        await _add(s, services[site], server_id, minute, bucket)
        await _add_total(s, services[site], server_id, bucket)
    lost = max(0, page.lost - cursor.lost)
    cursor.cursor, cursor.lost, cursor.updated_at = page.cursor, page.lost, utcnow()
    return Stored(len(page.buckets), lost)


def _by_minute(buckets: Iterable[RequestBucket]) -> dict[tuple[str, str, int], RequestBucket]:
    merged: dict[tuple[str, str, int], RequestBucket] = {}
    for bucket in buckets:
        key = (bucket.service, bucket.release, bucket.start - bucket.start % MINUTE)
        merged[key] = merged[key].merged(bucket) if key in merged else bucket
    return merged


async def _add(s: AsyncSession, service_id: str, server_id: str, minute: int,
               bucket: RequestBucket) -> None:
    key = {"service_id": service_id, "server_id": server_id, "minute": minute,
           "release": bucket.release[:8]}
    row = await s.get(AppMetricMinute, key, with_for_update=True)
    if row is None:
        row = AppMetricMinute(**key, **dict.fromkeys(COUNTS, 0),
                              latency=json.dumps(empty_histogram()))
        s.add(row)
    _add_counts(row, bucket.model_dump())


async def _add_total(s: AsyncSession, service_id: str, server_id: str,
                     bucket: RequestBucket) -> None:
    key = {"service_id": service_id, "server_id": server_id}
    row = await s.get(AppMetricTotal, key, with_for_update=True)
    if row is None:
        row = AppMetricTotal(**key, **dict.fromkeys(COUNTS, 0),
                             latency=json.dumps(empty_histogram()))
        s.add(row)
    _add_counts(row, bucket.model_dump())


def _add_counts(row: CountRow | AppMetricTotal, counts: dict[str, Any]) -> None:
    for name in COUNTS:
        setattr(row, name, getattr(row, name) + counts[name])
    latency = counts["latency"]
    row.latency = json.dumps(add_histograms(json.loads(row.latency), latency))


async def store_host(s: AsyncSession, server_id: str, stats: HostStats) -> None:
    """Keep the figures as the server's latest and as its row for their minute."""
    text = stats.model_dump_json()
    latest = await s.get(HostStatsLatest, server_id, with_for_update=True)
    if latest is None:
        s.add(HostStatsLatest(server_id=server_id, at=stats.at, stats=text))
    else:
        latest.at, latest.stats = stats.at, text
    minute = int(stats.at) - int(stats.at) % MINUTE
    row = await s.get(HostStatsMinute, {"server_id": server_id, "minute": minute})
    if row is None:
        s.add(HostStatsMinute(server_id=server_id, minute=minute, stats=text))
    else:
        row.stats = text


async def latest_hosts(s: AsyncSession) -> dict[str, HostStats]:
    rows = await s.scalars(select(HostStatsLatest))
    return {row.server_id: HostStats.model_validate_json(row.stats) for row in rows}


async def roll_up(s: AsyncSession, now: float | None = None) -> int:
    """Add minute rows older than a day into their hour rows, drop them, and drop hour rows
    and host history past their retention. Answers the minute rows rolled up."""
    now = time.time() if now is None else now
    oldest_fine = int(now) - FINE_SECONDS
    old = list(await s.scalars(select(AppMetricMinute).with_for_update()
                               .where(AppMetricMinute.minute < oldest_fine)))
    for key, counts in _by_hour(old).items():
        await _add_hour(s, key, counts)
    await s.execute(delete(AppMetricMinute).where(AppMetricMinute.minute < oldest_fine))
    await s.execute(delete(AppMetricHour).where(AppMetricHour.hour < int(now) - HOURLY_SECONDS))
    await s.execute(delete(HostStatsMinute).where(HostStatsMinute.minute < oldest_fine))
    return len(old)


HourKey = tuple[str, str, int, str]  # service, server, hour, release


def _by_hour(minutes: list[AppMetricMinute]) -> dict[HourKey, dict[str, Any]]:
    """The minute rows' counts added up per hour row."""
    sums: dict[HourKey, dict[str, Any]] = {}
    for row in minutes:
        key = (row.service_id, row.server_id, row.minute - row.minute % HOUR, row.release)
        total = sums.setdefault(key, {**dict.fromkeys(COUNTS, 0), "latency": empty_histogram()})
        for name in COUNTS:
            total[name] += getattr(row, name)
        total["latency"] = add_histograms(total["latency"], histogram(row))
    return sums


async def _add_hour(s: AsyncSession, key: HourKey, counts: dict[str, Any]) -> None:
    service_id, server_id, hour, release = key
    ids = {"service_id": service_id, "server_id": server_id, "hour": hour, "release": release}
    row = await s.get(AppMetricHour, ids, with_for_update=True)
    if row is None:
        row = AppMetricHour(**ids, **dict.fromkeys(COUNTS, 0),
                            latency=json.dumps(empty_histogram()))
        s.add(row)
    _add_counts(row, counts)


def histogram(row: CountRow) -> list[int]:
    latency: Sequence[int] = json.loads(row.latency)
    return list(latency)
