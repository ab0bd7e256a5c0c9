"""The app metrics API: a service's series with deploy markers, grouped on demand; a
server's health; refusals a person can act on (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics_store as store
from dockyard.core.platform import Platform
from dockyard.models.app_metrics import HostStats, RequestBucket, RequestMetricsPage
from dockyard.models.enums import DeploymentStatus, SourceKind
from dockyard.models.tables import Deployment
from tests import sqlite_only
from tests.conftest import Account
from tests.logs.conftest import add_server, shop  # noqa: F401  (fixture)
from tests.metrics.app_metrics_helpers import bucket, service_id

database_url = sqlite_only.database_url  # nothing here depends on the database kind

URL = "/api/v1/projects/shop/services/web/metrics"


async def store_buckets(platform: Platform, workspace_id: str, server_id: str,
                        buckets: list[RequestBucket]) -> None:
    async def tx(s: AsyncSession) -> None:
        after = await store.cursor_of(s, server_id)
        page = RequestMetricsPage(cursor=after + len(buckets), buckets=buckets)
        await store.store_page(s, workspace_id, server_id, after, page)

    await platform.db.write(tx)


async def add_deployment(platform: Platform, workspace_id: str, service: str, at: float,
                         kind: SourceKind = SourceKind.IMAGE) -> str:
    async def tx(s: AsyncSession) -> str:
        row = Deployment(workspace_id=workspace_id, service_id=service, source_kind=kind,
                         status=DeploymentStatus.SUCCEEDED,
                         finished_at=datetime.fromtimestamp(at, UTC))
        s.add(row)
        await s.flush()
        return row.id

    return await platform.db.write(tx)


@pytest.mark.parametrize(("query", "message"), [
    ({"since": "31d"}, "kept 30 days"), ({"since": "721h"}, "use 1m to 30d"),
    ({"since": "43201m"}, "use 1m to 30d"), ({"since": "90s"}, "m, h or d"),
    ({"since": "0m"}, "use 1m"), ({"since": "yesterday"}, "like 30m"), ({"by": "pod"}, "server"),
])
async def test_bad_queries_are_refused_saying_what_to_send(
        client: httpx.AsyncClient, shop: Account, query: dict[str, str],  # noqa: F811
        message: str) -> None:
    answer = await client.get(URL, params=query, headers=shop.headers)
    assert answer.status_code == 422
    assert message in answer.text


async def test_an_unknown_service_is_not_found(
        client: httpx.AsyncClient, shop: Account) -> None:  # noqa: F811
    answer = await client.get(URL.replace("web", "nope"), headers=shop.headers)
    assert answer.status_code == 404


async def test_the_series_marks_deploys_and_the_live_release(
        client: httpx.AsyncClient, platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    service = await service_id(platform)
    minute = int(time.time()) // 60 * 60 - 600
    old = await add_deployment(platform, shop.workspace_id, service, minute - 7200)
    new = await add_deployment(platform, shop.workspace_id, service, minute + 130,
                               SourceKind.ROLLBACK)
    await store_buckets(platform, shop.workspace_id, server.id, [
        bucket(minute, 60, release=old[:8], latency_ms=40),
        bucket(minute + 10, 60, release=old[:8], latency_ms=40, status_5xx=6),
        bucket(minute + 180, 30, release=new[:8], latency_ms=3)])
    answer = await client.get(URL, params={"since": "30m"}, headers=shop.headers)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["step_seconds"] == 60
    points = {p["time"]: p for p in found["points"]}
    first = points[datetime.fromtimestamp(minute, UTC).isoformat().replace("+00:00", "Z")]
    # a whole minute's rate; the latency histogram's bucket of 40 ms is 30-50
    assert (first["requests"], first["status_5xx"], first["rate"]) == (120, 6, 2.0)
    assert (first["live_release"], 30 < first["p50_ms"] <= 50) == (old[:8], True)
    assert sum(p["requests"] for p in found["points"]) == 150
    assert found["points"][-1]["live_release"] == new[:8]
    assert [(d["release"], d["kind"]) for d in found["deploys"]] == [(new[:8], "rollback")]


async def test_series_by_release_and_by_server(
        client: httpx.AsyncClient, platform: Platform, shop: Account) -> None:  # noqa: F811
    one = await add_server(platform, shop.workspace_id)
    two = await add_server(platform, shop.workspace_id, "node-2")
    minute = int(time.time()) // 60 * 60 - 120
    await store_buckets(platform, shop.workspace_id, one.id,
                        [bucket(minute, 5, release="aaaa1111"), bucket(minute, 7, release="")])
    await store_buckets(platform, shop.workspace_id, two.id, [bucket(minute, 11)])
    by_release = await client.get(URL, params={"by": "release"}, headers=shop.headers)
    assert {p["group"]: p["requests"] for p in by_release.json()["points"]} == {
        "aaaa1111": 5, "": 7, "rel1": 11}
    by_server = await client.get(URL, params={"by": "server"}, headers=shop.headers)
    assert {p["group"]: p["requests"] for p in by_server.json()["points"]} == {
        "node-1": 12, "node-2": 11}


async def test_server_health_shows_the_latest_figures_and_their_age(
        client: httpx.AsyncClient, platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    url = "/api/v1/infra/servers/node-1/health"
    never = (await client.get(url, headers=shop.headers)).json()
    assert never == {**never, "server": "node-1", "age_seconds": None, "cpus": None}
    stats = HostStats(at=time.time() - 5, cpus=4, cpu_percent=50, memory_total_bytes=8,
                      memory_used_bytes=2, disk_total_bytes=200, disk_used_bytes=150,
                      containers_running=4, containers_stopped=2)
    await platform.db.write(lambda s: store.store_host(s, server.id, stats))
    found = (await client.get(url, headers=shop.headers)).json()
    assert (found["cpus"], found["disk_used_fraction"], found["containers_stopped"]) == (4, 0.75, 2)
    assert 5 <= found["age_seconds"] < 3600
    missing = await client.get("/api/v1/infra/servers/node-9/health", headers=shop.headers)
    assert missing.status_code == 404
