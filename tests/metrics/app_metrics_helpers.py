"""Helpers of the app metrics tests: a project's service and server rows, buckets to store,
and the rows stored."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.app_metric_tables import AppMetricHour, AppMetricMinute
from dockyard.models.app_metrics import RequestBucket, empty_histogram, histogram_index
from dockyard.models.tables import Service

T0 = 1_800_000_000  # a whole hour (epoch s)


def bucket(start: int, requests: int = 1, *, site: str = "shop-web", release: str = "rel1",
           latency_ms: float = 20, status_5xx: int = 0) -> RequestBucket:
    latency = empty_histogram()
    latency[histogram_index(latency_ms)] = requests
    return RequestBucket(service=site, release=release, start=start, requests=requests,
                         status_2xx=requests - status_5xx, status_5xx=status_5xx,
                         bytes_sent=100 * requests, latency=latency)


async def service_id(platform: Platform, name: str = "web") -> str:
    async def tx(s: AsyncSession) -> str:
        found = await s.scalar(select(Service.id).where(Service.name == name))
        assert found is not None
        return found

    return await platform.db.read(tx)


async def rows(platform: Platform, table: type[Any]) -> list[Any]:
    async def tx(s: AsyncSession) -> list[Any]:
        return list(await s.scalars(select(table)))

    return await platform.db.read(tx)


def counts(row: AppMetricMinute | AppMetricHour) -> tuple[int, int, int, list[int]]:
    return row.requests, row.status_5xx, row.bytes_sent, json.loads(row.latency)
