"""Store queries on records written as the worker writes them (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.kernel.metrics import store
from dockyard.models.enums import Role

ADMIN = Actor("u" * 32, "w" * 32, Role.ADMIN)


def record(route: str, latency: float, status: int = 200, age_hours: float = 0,
           workspace: str = "w" * 32, path: str | None = None) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(hours=age_hours)
    return {
        "method": "GET", "path": path or route, "route": route, "query_params": {},
        "request_id": None, "status_code": status, "error_detail": None,
        "latency_ms": latency, "client_ip": "127.0.0.1", "user_agent": "", "referer": "",
        "user_id": "u" * 32, "workspace_id": workspace, "country": None,
        "created_at": at.isoformat(), "year": at.year, "month": at.month, "day": at.day,
        "hour": at.hour,
    }


async def seed(platform: Platform) -> None:
    await store.save_records(platform.db, [
        record("/api/v1/projects", 3.0),
        record("/api/v1/projects", 5.0),
        record("/api/v1/projects/{project}", 1500.0, path="/api/v1/projects/shop"),
        record("/api/v1/projects/{project}", 2500.0, path="/api/v1/projects/blog"),
        record("/api/v1/servers", 1200.0, status=500),
        record("/api/v1/servers", 10.0, status=404),
        record("/api/v1/env", 20.0, status=422),
        record("/api/v1/old", 9000.0, status=500, age_hours=30),
        record("/api/v1/projects", 4000.0, status=500, workspace="x" * 32),
    ])


async def test_recent_filters_by_prefix_and_latency_newest_first(platform: Platform) -> None:
    await seed(platform)
    prefixed = await store.recent_requests(platform, ADMIN, path_prefix="/api/v1/projects/")
    assert [r.path for r in prefixed] == ["/api/v1/projects/blog", "/api/v1/projects/shop"]
    slow = await store.recent_requests(platform, ADMIN, min_latency_ms=1500)
    assert sorted(r.latency_ms for r in slow) == [1500.0, 2500.0, 9000.0]
    assert len(await store.recent_requests(platform, ADMIN, limit=3)) == 3


async def test_a_prefix_with_like_wildcards_matches_literally(platform: Platform) -> None:
    await store.save_records(platform.db, [record("/a_b", 1.0), record("/axb", 1.0)])
    assert [r.path for r in await store.recent_requests(platform, ADMIN, path_prefix="/a_")] == [
        "/a_b"]


async def test_stats_over_the_last_hours(platform: Platform) -> None:
    await seed(platform)
    stats = await store.request_stats(platform, ADMIN, hours=24)
    assert stats.total == 7
    assert stats.average_latency_ms == round((3 + 5 + 1500 + 2500 + 1200 + 10 + 20) / 7, 3)
    assert [(e.route, e.requests, e.max_latency_ms) for e in stats.slow_endpoints] == [
        ("/api/v1/projects/{project}", 2, 2500.0), ("/api/v1/servers", 1, 1200.0)]
    assert [(e.route, e.requests) for e in stats.error_endpoints] == [
        ("/api/v1/servers", 2), ("/api/v1/env", 1)]
    assert (await store.request_stats(platform, ADMIN, hours=48)).total == 8


async def test_slow_and_error_listings(platform: Platform) -> None:
    await seed(platform)
    slow = await store.slow_requests(platform, ADMIN, hours=24)
    assert sorted(r.latency_ms for r in slow) == [1200.0, 1500.0, 2500.0]
    errors = await store.error_requests(platform, ADMIN, hours=24)
    assert sorted(r.status_code for r in errors) == [404, 422, 500]


async def test_another_workspace_sees_none_of_these(platform: Platform) -> None:
    await seed(platform)
    stranger = Actor("v" * 32, "y" * 32, Role.OWNER)
    assert await store.recent_requests(platform, stranger) == []
    assert (await store.request_stats(platform, stranger)).total == 0
