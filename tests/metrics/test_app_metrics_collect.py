"""The worker's app metrics job against a real agent app (on this machine's Docker, over
ASGI): its request buckets, filled through its own aggregator, stored once each with the
cursor; its host figures stored; an unreachable agent loses nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.request_metrics import LoggedRequest
from dockyard.agent.settings import AgentSettings
from dockyard.core import agents, app_metrics
from dockyard.core.platform import Platform
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.app_metric_tables import AppMetricMinute, AppMetricTotal
from dockyard.models.app_metrics import BUCKET_SECONDS
from dockyard.models.schemas import ServerPublic
from tests import sqlite_only
from tests.conftest import Account, make_settings
from tests.logs.conftest import DOCKER, add_server, shop  # noqa: F401  (fixture)
from tests.metrics.app_metrics_helpers import counts, rows

database_url = sqlite_only.database_url  # nothing here depends on the database kind

ClientOf = Callable[[ServerPublic], NodeAgentClient]


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Cleaning only a full disk: these tests share this machine's Docker."""
    result = make_settings(tmp_path, database_url, disk_cleanup_fraction=1.0)
    ensure_key_file(result.key_file)
    return result


@pytest.fixture
async def agent_app(platform: Platform, shop: Account, tmp_path: Path) -> Starlette:  # noqa: F811
    secret = await agents.secret_for(platform, shop.workspace_id)
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=DOCKER)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(secret))
    app = create_app(settings)
    app.state.secret = secret
    return app


@pytest.fixture
def client_of(agent_app: Starlette) -> ClientOf:
    transport = httpx.ASGITransport(app=agent_app)
    return lambda server: NodeAgentClient("http://agent.test", agent_app.state.secret,
                                          transport=transport)


def serve(agent_app: Starlette, at: float, status: int, seconds: float, *,
          service: str = "shop-web", release: str = "rel1") -> None:
    """A request counted by the agent's own aggregator, as if its edge had logged it."""
    request = LoggedRequest(at=at, host="shop.test", service=service, upstream="127.0.0.1:1",
                            status=status, seconds=seconds, bytes_sent=500)
    agent_app.state.request_metrics.aggregator.add(request, service, release)


def close_buckets(agent_app: Starlette, now: float) -> None:
    collector = agent_app.state.request_metrics
    collector.buffer.extend(collector.aggregator.close(now))


async def test_buckets_are_stored_once_with_the_host_figures(
        platform: Platform, shop: Account, agent_app: Starlette,  # noqa: F811
        client_of: ClientOf) -> None:
    server = await add_server(platform, shop.workspace_id)
    start = int(time.time()) // 60 * 60 - 120
    for offset, status, seconds in ((1, 200, 0.004), (2, 503, 0.2), (12, 200, 0.004)):
        serve(agent_app, start + offset, status, seconds)
    serve(agent_app, start + 3, 200, 0.01, service="other-web")
    close_buckets(agent_app, start + 60)
    first = await app_metrics.collect(platform, client_of)
    assert (first.buckets, first.hosts) == (3, 1)
    serve(agent_app, start + 21, 200, 0.004)
    close_buckets(agent_app, start + 60)
    second = await app_metrics.collect(platform, client_of)
    assert second.buckets == 1
    [minute] = await rows(platform, AppMetricMinute)
    requests, errors, sent, latency = counts(minute)
    assert (minute.minute, minute.release, requests, errors, sent) == (start, "rel1", 4, 1, 2000)
    assert sum(latency) == 4
    [total] = await rows(platform, AppMetricTotal)
    assert total.requests == 4
    hosts = await app_metrics.latest_host_stats(platform)
    assert hosts[server.id].cpus >= 1
    assert hosts[server.id].disk_total_bytes > 0


async def test_an_unreachable_agent_delays_and_loses_nothing(
        platform: Platform, shop: Account, agent_app: Starlette,  # noqa: F811
        client_of: ClientOf) -> None:
    await add_server(platform, shop.workspace_id)
    start = int(time.time()) // 60 * 60 - 120
    serve(agent_app, start, 200, 0.004)
    close_buckets(agent_app, start + 2 * BUCKET_SECONDS)
    down = await app_metrics.collect(platform)  # the server's real address answers nobody
    assert (down.buckets, down.hosts) == (0, 0)
    assert (await app_metrics.collect(platform, client_of)).buckets == 1
    assert [r.requests for r in await rows(platform, AppMetricMinute)] == [1]
