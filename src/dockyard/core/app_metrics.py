"""Request metrics of the apps and health of the servers, in the control plane: a periodic job
of the worker pulls every agent's closed request buckets and host figures and stores them
(fine rows for a day, hourly rows for 30 days, see core/app_metrics_store.py); the summaries
the alerts and the autoscaler read."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.core import agents, disk_cleanups, fleet
from dockyard.core import app_metrics_store as store
from dockyard.core.logcollect import _platform, _servers
from dockyard.core.platform import Platform
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.models.app_metric_tables import AppMetricMinute
from dockyard.models.app_metrics import (
    BUCKET_SECONDS,
    HostStats,
    RequestMetricsPage,
    add_histograms,
    empty_histogram,
    percentile,
)
from dockyard.models.schemas import ServerPublic

log = logging.getLogger("dockyard.app_metrics")
COLLECT_TASK = "app_metrics.collect"
ROLLUP_TASK = "app_metrics.rollup"
MAX_PAGES_PER_RUN = 20
# How far behind now the stored buckets end, about: the open bucket is not sent (half of
# one on average), a closed one waits 3 s to settle, the job runs every 5 s.
COLLECTION_LAG = BUCKET_SECONDS
TASKS = Tasks()
TASKS.every(COLLECT_TASK, "* * * * * */5", COLLECT_TASK)
TASKS.every(ROLLUP_TASK, "*/10 * * * *", ROLLUP_TASK)


@dataclass(frozen=True)
class TrafficSummary:
    """A service's requests over the last `seconds`, every server and release together."""

    requests: int
    seconds: float
    errors_5xx: int
    p95_ms: float | None

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        """The share of requests answered 5xx, 0..1."""
        return self.errors_5xx / self.requests if self.requests else 0.0


async def service_traffic(p: Platform, service_id: str, window: timedelta) -> TrafficSummary:
    """The service's traffic over the last `window` (what the alerts and the autoscaler read):
    the minutes the window overlaps, up to COLLECTION_LAG ago."""
    now = time.time()
    first = int(now - window.total_seconds())
    first -= first % store.MINUTE

    async def tx(s: AsyncSession) -> list[AppMetricMinute]:
        query = select(AppMetricMinute).where(AppMetricMinute.service_id == service_id,
                                              AppMetricMinute.minute >= first)
        return list(await s.scalars(query))

    rows = await p.db.read(tx)
    histogram = empty_histogram()
    for row in rows:
        histogram = add_histograms(histogram, store.histogram(row))
    seconds = max(now - first - COLLECTION_LAG, 1)
    return TrafficSummary(requests=sum(r.requests for r in rows), seconds=seconds,
                          errors_5xx=sum(r.status_5xx for r in rows),
                          p95_ms=percentile(histogram, 0.95))


async def latest_host_stats(p: Platform) -> dict[str, HostStats]:
    """The latest host figures of every server that reported, by server id."""
    return await p.db.read(store.latest_hosts)


@dataclass(frozen=True)
class Collected:
    buckets: int
    lost: int
    hosts: int


async def collect(p: Platform, client_of: fleet.ClientFactory | None = None) -> Collected:
    """Pull every server's new request buckets and host figures; an unreachable agent waits
    for the next run."""
    client_of = client_of or agents.client_factory(await agents.agent_secrets(p))
    buckets = lost = hosts = 0
    for server in await _servers(p):
        try:
            async with client_of(server) as client:
                stored = await collect_requests(p, server, client)
                hosts += await collect_host(p, server, client)
        except (AgentError, httpx.HTTPError, OSError) as exc:
            log.warning("metrics of server %s not collected this time: %s", server.name, exc)
            continue
        buckets, lost = buckets + stored.buckets, lost + stored.lost
        if stored.lost:
            log.warning("server %s dropped %d request buckets nobody collected in time",
                        server.name, stored.lost)
    return Collected(buckets, lost, hosts)


async def collect_requests(p: Platform, server: ServerPublic,
                           client: NodeAgentClient) -> store.Stored:
    buckets = lost = 0
    for _ in range(MAX_PAGES_PER_RUN):
        after = await p.db.read(lambda s: store.cursor_of(s, server.id))
        page = await client.request_metrics(after=after)
        if page.cursor == after:
            break
        stored = await _store(p, server, after, page)
        buckets, lost = buckets + stored.buckets, lost + stored.lost
        if not page.buckets:
            break
    return store.Stored(buckets, lost)


async def _store(p: Platform, server: ServerPublic, after: int,
                 page: RequestMetricsPage) -> store.Stored:
    async def tx(s: AsyncSession) -> store.Stored:
        return await store.store_page(s, server.workspace_id, server.id, after, page)

    return await p.db.write(tx)


async def collect_host(p: Platform, server: ServerPublic, client: NodeAgentClient) -> int:
    """Store the host figures; record the disk cleanings the agent did by itself."""
    stats = await client.host_stats()
    await p.db.write(lambda s: store.store_host(s, server.id, stats))
    await disk_cleanups.collect_cleanups(p, server, client)
    return 1


async def roll_up(p: Platform) -> int:
    return await p.db.write(lambda s: store.roll_up(s))


async def rows_stored(p: Platform) -> int:
    """How many minute rows are kept (for the figures)."""
    return await p.db.read(lambda s: _count(s))


async def _count(s: AsyncSession) -> int:
    return await s.scalar(select(func.count()).select_from(AppMetricMinute)) or 0


@TASKS.task(COLLECT_TASK, max_attempts=1, coalesce=True)
async def collect_job(context: JobContext, payload: dict[str, Any]) -> None:
    await collect(_platform(context))


@TASKS.task(ROLLUP_TASK, max_attempts=1, coalesce=True)
async def rollup_job(context: JobContext, payload: dict[str, Any]) -> None:
    await roll_up(_platform(context))
