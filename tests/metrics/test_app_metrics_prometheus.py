"""GET /metrics with the apps' series (from the stored totals) and the servers' gauges, and
its token: without the right bearer token, 401 (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import app_metrics_store as store
from dockyard.core.platform import Platform
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.app_metrics import HostStats, RequestMetricsPage
from dockyard.models.tables import Workspace
from tests import sqlite_only
from tests.conftest import Account, make_settings
from tests.logs.conftest import add_server, shop  # noqa: F401  (fixture)
from tests.metrics.app_metrics_helpers import T0, bucket
from tests.metrics.test_prometheus import samples

database_url = sqlite_only.database_url  # nothing here depends on the database kind

TOKEN = "scrape-me-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def workspace_name(platform: Platform, workspace_id: str) -> str:
    async def tx(s: AsyncSession) -> str:
        return (await s.get_one(Workspace, workspace_id)).name

    return await platform.db.read(tx)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    result = make_settings(tmp_path, database_url, metrics_token=TOKEN)
    ensure_key_file(result.key_file)
    return result


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TOKEN}])
async def test_a_scrape_without_the_token_is_refused(
        client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    answer = await client.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert "DOCKYARD_METRICS_TOKEN" in answer.text


async def test_per_service_series_and_host_gauges(
        client: httpx.AsyncClient, platform: Platform, shop: Account) -> None:  # noqa: F811
    server = await add_server(platform, shop.workspace_id)
    page = RequestMetricsPage(cursor=2, buckets=[
        bucket(T0, 10, latency_ms=3, status_5xx=2), bucket(T0 + 7200, 5, latency_ms=700)])
    stats = HostStats(at=time.time(), cpus=2, cpu_percent=30, memory_total_bytes=8,
                      memory_used_bytes=3, disk_total_bytes=100, disk_used_bytes=40,
                      containers_running=5, containers_stopped=1)

    async def tx(s: AsyncSession) -> None:
        await store.store_page(s, shop.workspace_id, server.id, 0, page)
        await store.store_host(s, server.id, stats)

    await platform.db.write(tx)
    answer = await client.get("/metrics", headers=BEARER)
    assert answer.status_code == 200
    found = samples(answer.text)
    workspace = ("workspace", await workspace_name(platform, shop.workspace_id))
    app = (("project", "shop"), ("server", "node-1"), ("service", "web"), workspace)
    assert found[("dockyard_app_requests_total", (("code", "5xx"), *app))] == 2
    assert found[("dockyard_app_requests_total", (("code", "2xx"), *app))] == 13
    assert found[("dockyard_app_response_bytes_total", app)] == 1500
    le = "dockyard_app_request_duration_seconds_bucket"
    assert found[(le, (("le", "0.005"), *app))] == 10
    assert found[(le, (("le", "0.5"), *app))] == 10
    assert found[(le, (("le", "+Inf"), *app))] == 15
    assert found[("dockyard_server_disk_used_bytes", (("server", "node-1"), workspace))] == 40
    assert found[("dockyard_server_containers_running", (("server", "node-1"), workspace))] == 5
    assert ("dockyard_http_requests_total", (("method", "GET"), ("route", "/metrics"),
                                             ("status", "401"))) not in found
