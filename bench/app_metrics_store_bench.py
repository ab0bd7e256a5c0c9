"""What the control plane's side of app metrics costs, on one database: storing agents'
request buckets (pages of 1,000, as the collect job gets them), reading a service's series
(1 h and 24 h), a Prometheus scrape of the apps' series, and the daily roll-up.

A day of traffic for `--services` services on one server, every 10 s bucket busy, one
release each. Prints the figures; asserts nothing.

    .venv/bin/python bench/app_metrics_store_bench.py [--services 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics_prom, app_metrics_query
from dockyard.core import app_metrics_store as store
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.kernel.migrate import upgrade
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.app_metric_tables import AppMetricMinute
from dockyard.models.app_metrics import (
    BUCKET_SECONDS,
    RequestBucket,
    RequestMetricsPage,
    empty_histogram,
)
from dockyard.models.enums import Role, ServiceKind
from dockyard.models.tables import Project, Server, Service, Workspace

DAY = 86_400
PAGE = 1000


def bucket(site: str, start: int) -> RequestBucket:
    latency = empty_histogram()
    latency[3:12] = [40, 90, 120, 80, 60, 30, 10, 5, 2]
    return RequestBucket(service=site, release="ab12cd34", start=start, requests=437,
                         status_2xx=430, status_4xx=5, status_5xx=2, bytes_sent=437 * 900,
                         latency=latency)


async def seed(p: Platform, services: int) -> tuple[str, str]:
    async def tx(s: AsyncSession) -> tuple[str, str]:
        workspace = Workspace(name="bench")
        s.add(workspace)
        await s.flush()
        project = Project(workspace_id=workspace.id, name="shop")
        server = Server(workspace_id=workspace.id, provider="manual", name="node-1")
        s.add_all([project, server])
        await s.flush()
        s.add_all(Service(workspace_id=workspace.id, project_id=project.id, name=f"web{n}",
                          kind=ServiceKind.APP) for n in range(services))
        return workspace.id, server.id

    return await p.db.write(tx)


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


async def store_day(p: Platform, workspace_id: str, server_id: str, services: int,
                    start: int) -> float:
    buckets = [bucket(f"shop-web{n}", t) for t in range(start, start + DAY, BUCKET_SECONDS)
               for n in range(services)]
    spent = 0.0
    for first in range(0, len(buckets), PAGE):
        page = RequestMetricsPage(cursor=first + PAGE, buckets=buckets[first:first + PAGE])

        async def tx(s: AsyncSession, page: RequestMetricsPage = page, after: int = first
                     ) -> store.Stored:
            return await store.store_page(s, workspace_id, server_id, after, page)

        seconds, _ = await timed(lambda tx=tx: p.db.write(tx))
        spent += seconds
    print(f"stored {len(buckets):,} buckets in {spent:.1f} s: "
          f"{len(buckets) / spent:,.0f} buckets/s ({PAGE:,} a page)")
    return spent


async def main(services: int, database_url: str | None) -> None:
    home = Path(tempfile.mkdtemp(prefix="dy-metrics-bench-"))
    settings = Settings(data_dir=home, database_url=database_url, redis_url=None)
    ensure_key_file(settings.key_file)
    upgrade(settings)
    p = Platform.open(settings)
    workspace_id, server_id = await seed(p, services)
    now = int(time.time()) // 60 * 60
    await store_day(p, workspace_id, server_id, services, now - DAY + 60)
    count = await p.db.read(lambda s: s.scalar(select(func.count()).select_from(AppMetricMinute)))
    print(f"{count:,} minute rows ({count // services:,} per service)")
    actor = Actor(user_id="bench", workspace_id=workspace_id, role=Role.OWNER)
    for since in ("1h", "24h"):
        seconds, found = await timed(lambda since=since: app_metrics_query.service_metrics(
            p, actor, "shop", "web0", since))
        print(f"series since {since}: {len(found.points)} points in {seconds * 1000:.0f} ms")
    seconds, body = await timed(lambda: app_metrics_prom.exposition(p))
    print(f"Prometheus scrape of {services} services: {len(body):,} bytes in "
          f"{seconds * 1000:.0f} ms")
    seconds, rolled = await timed(lambda: p.db.write(lambda s: store.roll_up(s, now + DAY)))
    print(f"roll-up of {rolled:,} minute rows into hours: {seconds:.1f} s")
    await p.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.services, args.database_url))
