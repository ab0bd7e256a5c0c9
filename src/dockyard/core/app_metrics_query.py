"""Reading stored request metrics: a service's series at a step chosen from the range (minute
rows for the last day, hour rows before), grouped by server or release on demand, with the
deploys that went live in the range; and a server's latest health figures."""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics_store as store
from dockyard.core.app_metrics import COLLECTION_LAG
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.kernel.errors import NotFound
from dockyard.models.app_metric_series import (
    DeployMarker,
    GroupBy,
    MetricPoint,
    ServerHealth,
    ServiceMetrics,
    since_delta,
)
from dockyard.models.app_metric_tables import AppMetricHour, AppMetricMinute, HostStatsLatest
from dockyard.models.app_metrics import HostStats, add_histograms, empty_histogram, percentile
from dockyard.models.enums import DeploymentStatus, SourceKind
from dockyard.models.tables import Deployment, Server

# (longest range in seconds, step in seconds): at most ~120 points
STEPS = ((3 * 3600, 60), (12 * 3600, 300), (24 * 3600, 900), (5 * 86400, 3600))
LONG_STEP = 6 * 3600
COUNT_FIELDS = ("status_2xx", "status_3xx", "status_4xx", "status_5xx")


def step_for(seconds: float) -> int:
    return next((step for longest, step in STEPS if seconds <= longest), LONG_STEP)


@dataclass
class Sum:
    requests: int = 0
    statuses: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    bytes_sent: int = 0
    latency: list[int] = field(default_factory=empty_histogram)

    def add(self, row: store.CountRow) -> None:
        self.requests += row.requests
        self.statuses = [a + getattr(row, name)
                         for a, name in zip(self.statuses, COUNT_FIELDS, strict=True)]
        self.bytes_sent += row.bytes_sent
        self.latency = add_histograms(self.latency, store.histogram(row))


@dataclass(frozen=True)
class Release:
    at: float
    release: str
    rollback: bool


async def service_metrics(p: Platform, actor: Actor, project: str, service: str, since: str,
                          by: GroupBy | None = None) -> ServiceMetrics:
    """The service's series over the last `since` (checked by its field type)."""
    now = time.time()
    span = since_delta(since).total_seconds()
    step = step_for(span)
    first = int(now - span) // step * step

    async def tx(s: AsyncSession) -> ServiceMetrics:
        actor.require(Permission.READ)
        found = await service_named(s, actor, project, service)
        sums = await _sums(s, found.workspace_id, found.id, first, step, by)
        releases = await _releases(s, found.id)
        points = _points(sums, releases, first, step, now, by)
        return ServiceMetrics(project=project, service=service, since=since, step_seconds=step,
                              by=by, points=points, deploys=_markers(releases, first))

    return await p.db.read(tx)


async def _sums(s: AsyncSession, workspace_id: str, service_id: str, first: int, step: int,
                by: GroupBy | None) -> dict[tuple[int, str], Sum]:
    query = select(Server.id, Server.name).where(Server.workspace_id == workspace_id)
    names = {id_: name for id_, name in await s.execute(query)}
    sums: dict[tuple[int, str], Sum] = {}
    for row in await _rows(s, service_id, first):
        start = (row.minute if isinstance(row, AppMetricMinute) else row.hour) // step * step
        group = ("" if by is None else row.release if by is GroupBy.RELEASE
                 else names.get(row.server_id, row.server_id))
        sums.setdefault((start, group), Sum()).add(row)
    return sums


async def _rows(s: AsyncSession, service_id: str, first: int) -> list[store.CountRow]:
    minutes = await s.scalars(select(AppMetricMinute).where(
        AppMetricMinute.service_id == service_id, AppMetricMinute.minute >= first))
    hours = await s.scalars(select(AppMetricHour).where(
        AppMetricHour.service_id == service_id, AppMetricHour.hour >= first))
    return [*hours, *minutes]


async def _releases(s: AsyncSession, service_id: str) -> list[Release]:
    query = (select(Deployment).where(Deployment.service_id == service_id,
                                      Deployment.status == DeploymentStatus.SUCCEEDED,
                                      Deployment.finished_at.is_not(None))
             .order_by(Deployment.finished_at))
    return [Release(at=d.finished_at.timestamp(), release=d.id[:8],
                    rollback=d.source_kind is SourceKind.ROLLBACK or d.rollback_of is not None)
            for d in await s.scalars(query) if d.finished_at is not None]


def _points(sums: dict[tuple[int, str], Sum], releases: Sequence[Release], first: int,
            step: int, now: float, by: GroupBy | None) -> list[MetricPoint]:
    keys = sorted(sums) if by else [(t, "") for t in range(first, int(now) + 1, step)]
    return [_point(t, group, sums.get((t, group), Sum()), releases, step, now)
            for t, group in keys]


def _point(start: int, group: str, total: Sum, releases: Sequence[Release], step: int,
           now: float) -> MetricPoint:
    seconds = max(1.0, min(step, now - COLLECTION_LAG - start))
    s2, s3, s4, s5 = total.statuses
    return MetricPoint(
        time=datetime.fromtimestamp(start, UTC), group=group, requests=total.requests,
        rate=total.requests / seconds, status_2xx=s2, status_3xx=s3, status_4xx=s4,
        status_5xx=s5, p50_ms=percentile(total.latency, 0.5),
        p95_ms=percentile(total.latency, 0.95), p99_ms=percentile(total.latency, 0.99),
        bytes_sent=total.bytes_sent, live_release=_live(releases, start))


def _live(releases: Sequence[Release], at: float) -> str:
    index = bisect.bisect_right([r.at for r in releases], at)
    return releases[index - 1].release if index else ""


def _markers(releases: Sequence[Release], first: int) -> list[DeployMarker]:
    return [DeployMarker(time=datetime.fromtimestamp(r.at, UTC), release=r.release,
                         kind="rollback" if r.rollback else "deploy")
            for r in releases if r.at >= first]


async def server_health(p: Platform, actor: Actor, name: str) -> ServerHealth:
    """The server's latest host figures and their age."""

    async def tx(s: AsyncSession) -> ServerHealth:
        actor.require(Permission.READ)
        server = await s.scalar(select(Server).where(Server.workspace_id == actor.workspace_id,
                                                     Server.name == name))
        if server is None:
            raise NotFound("server", name)
        latest = await s.get(HostStatsLatest, server.id)
        return _health(name, HostStats.model_validate_json(latest.stats) if latest else None)

    return await p.db.read(tx)


def _health(name: str, stats: HostStats | None) -> ServerHealth:
    if stats is None:
        return ServerHealth(server=name, age_seconds=None)
    figures = stats.model_dump(exclude={"at", "services"})
    return ServerHealth(server=name, age_seconds=max(0.0, time.time() - stats.at),
                        disk_used_fraction=stats.disk_used_fraction, **figures)
