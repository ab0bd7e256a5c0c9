"""Middleware to queue to worker to table to admin endpoints, on a real app and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.api.app import create_app
from dockyard.api.deps import ActorDep
from dockyard.core.bootstrap import ensure_first_owner
from dockyard.core.platform import Platform
from dockyard.kernel.errors import NotFound
from dockyard.kernel.metrics.record import note_identity
from dockyard.kernel.metrics.tasks import TASKS
from dockyard.kernel.queue.dbsource import OutboxSource
from dockyard.kernel.queue.manager import connect
from dockyard.kernel.queue.outbox import pending_count
from dockyard.kernel.queue.sources import StreamSource
from dockyard.kernel.queue.worker import WorkerOptions
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.enums import Role
from dockyard.models.queue import RequestMetric
from tests.conftest import PASSWORD, Account, log_in, make_settings
from tests.queue.helpers import eventually, running_worker

FAST = WorkerOptions(block_ms=50, maintain_every=0.05, shutdown_grace=2)
Build = Callable[..., Awaitable["Stack"]]


class Stack:
    def __init__(self, app: FastAPI, platform: Platform, http: httpx.AsyncClient) -> None:
        self.app, self.platform, self.http = app, platform, http


async def probe(thing: str, actor: ActorDep) -> dict[str, str]:
    """What `get_actor` does once it reports identity (see note_identity)."""
    note_identity(actor.user_id, actor.workspace_id)
    if thing == "missing":
        raise NotFound("thing", thing)
    return {"thing": thing}


@pytest.fixture
async def build(tmp_path: Path, database_url: str | None) -> AsyncIterator[Build]:
    opened: list[tuple[Platform, httpx.AsyncClient]] = []

    async def make(**overrides: Any) -> Stack:
        settings = make_settings(tmp_path, database_url, trusted_proxies=["127.0.0.1"],
                                 **overrides)
        ensure_key_file(settings.key_file)
        platform = Platform.open(settings)
        app = create_app(settings, platform)
        app.add_api_route("/probe/{thing}", probe, methods=["GET"])
        transport = httpx.ASGITransport(app=app)
        http = httpx.AsyncClient(transport=transport, base_url="http://dockyard.test")
        opened.append((platform, http))
        return Stack(app, platform, http)

    yield make
    for platform, http in opened:
        await http.aclose()
        await platform.close()


async def owner_of(stack: Stack) -> Account:
    await ensure_first_owner(stack.platform, "owner@example.com", PASSWORD)
    return await log_in(stack.http, "owner@example.com")


async def drain_outbox(stack: Stack) -> None:
    source = OutboxSource(stack.platform.db, "default", ["default"], "metrics-worker")
    resources = {"db": stack.platform.db}
    async with running_worker(source, TASKS, FAST, resources):
        await eventually(lambda: _outbox_empty(stack.platform), what="the outbox to drain")


async def _outbox_empty(platform: Platform) -> bool:
    return await platform.db.read(lambda s: pending_count(s, "default")) == 0


PROBE_HEADERS = {
    "User-Agent": "probe/1.0", "Referer": "https://example.com/page",
    "X-Forwarded-For": "203.0.113.9, 10.0.0.1", "CF-IPCountry": "nl",
    "X-Request-ID": "req-probe-1",
}


async def test_every_field_of_a_request_reaches_the_table_and_the_admin_listing(
    build: Build,
) -> None:
    stack = await build(request_metrics_batch=1)
    owner = await owner_of(stack)
    headers = {**owner.headers, **PROBE_HEADERS}
    assert (await stack.http.get("/probe/hello?page=2&token=abc", headers=headers)).is_success
    assert (await stack.http.get("/probe/missing", headers=owner.headers)).status_code == 404
    await drain_outbox(stack)
    answer = await stack.http.get("/metrics/requests", headers=owner.headers,
                                  params={"path_prefix": "/probe/"})
    assert answer.status_code == 200, answer.text
    missing, hello = answer.json()
    assert {k: v for k, v in hello.items() if k not in ("latency_ms", "created_at")} == {
        "request_id": "req-probe-1", "method": "GET", "path": "/probe/hello",
        "route": "/probe/{thing}", "query_params": {"page": "2", "token": "********"},
        "status_code": 200, "error_detail": None, "client_ip": "203.0.113.9",
        "user_agent": "probe/1.0", "referer": "https://example.com/page",
        "user_id": owner.user_id, "workspace_id": owner.workspace_id, "country": "NL",
    }
    assert hello["latency_ms"] > 0
    assert missing["status_code"] == 404
    assert missing["error_detail"] == "thing 'missing' was not found"
    assert missing["client_ip"] == "127.0.0.1"


async def _partition_columns(platform: Platform) -> tuple[int, int, int, int, int]:
    async def tx(s: AsyncSession) -> tuple[int, int, int, int, int]:
        row = (await s.execute(select(
            func.count(), func.min(RequestMetric.year), func.min(RequestMetric.month),
            func.min(RequestMetric.day), func.min(RequestMetric.hour)))).one()
        return tuple(row)  # type: ignore[return-value]

    return await platform.db.read(tx)


async def test_records_carry_partition_columns(build: Build) -> None:
    stack = await build(request_metrics_batch=1)
    await stack.http.get("/healthz")
    await drain_outbox(stack)
    count, year, month, day, hour = await _partition_columns(stack.platform)
    assert count == 1
    assert year >= 2025
    assert 1 <= month <= 12
    assert 1 <= day <= 31
    assert 0 <= hour <= 23


async def test_the_metrics_endpoints_are_for_admins(build: Build) -> None:
    stack = await build()
    owner = await owner_of(stack)
    from tests.conftest import join_by_invitation

    for role in (Role.MEMBER, Role.ADMIN):
        await join_by_invitation(stack.platform, owner, role, f"{role.value}@example.com")
    member = await log_in(stack.http, "member@example.com")
    admin = await log_in(stack.http, "admin@example.com")
    for path in ("", "/stats", "/slow", "/errors"):
        url = f"/metrics/requests{path}"
        assert (await stack.http.get(url, headers=member.headers)).status_code == 403
        assert (await stack.http.get(url, headers=admin.headers)).status_code == 200
        assert (await stack.http.get(url)).status_code == 401


async def test_buffered_records_are_flushed_when_the_app_shuts_down(build: Build) -> None:
    stack = await build(request_metrics_batch=1000)
    stack.app.state.request_metrics.flush_every = 3600  # no timed flush: only the shutdown's
    async with lifespan(stack.app):
        for _ in range(3):
            await stack.http.get("/healthz")
        assert await _outbox_empty(stack.platform), "still buffered: batch not full"
    assert not await _outbox_empty(stack.platform)
    await drain_outbox(stack)
    count, *_ = await _partition_columns(stack.platform)
    assert count == 3


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol through the whole middleware stack."""
    import asyncio

    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    running = asyncio.create_task(app(scope, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:  # shut down even when the test failed: an app left running leaks its loops
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await running


async def test_with_redis_records_travel_through_the_stream(
    build: Build, redis_url: str
) -> None:
    stack = await build(request_metrics_batch=2, redis_url=redis_url)
    for _ in range(4):
        await stack.http.get("/healthz")
    redis = connect(redis_url)
    source = StreamSource(redis, ["default"], "metrics-worker")
    async with running_worker(source, TASKS, FAST, {"db": stack.platform.db}):

        async def stored() -> bool:
            count, *_ = await _partition_columns(stack.platform)
            return count == 4

        await eventually(stored, what="four records")
    await redis.aclose()
    assert await _outbox_empty(stack.platform), "Redis took them; the outbox stayed empty"
    await stack.app.state.request_metrics.close()


def test_metrics_can_be_switched_off(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "request_metrics": False})
    app = create_app(settings)
    names = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert "RequestMetricsMiddleware" not in names
    on = create_app(Settings.model_validate({"data_dir": tmp_path}))
    assert "RequestMetricsMiddleware" in [m.cls.__name__ for m in on.user_middleware]  # type: ignore[attr-defined]
