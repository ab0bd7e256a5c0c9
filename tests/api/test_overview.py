"""The overview (GET /api/v1/overview): every project's services with their live release, the
state their last deployment left them in and their request rate of the last minutes; a fixed
number of queries whatever the number of services; one workspace's only (SQLite and
PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import overview, projects, services
from dockyard.core.app_metrics import COLLECTION_LAG
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.models.enums import DeploymentStatus, Role, ServiceKind, SourceKind
from dockyard.models.schemas import ProjectCreate, ServiceCreate
from dockyard.models.tables import Deployment, Service
from tests.api.test_app_metrics_api import store_buckets
from tests.conftest import Account
from tests.logs.conftest import add_server
from tests.metrics.app_metrics_helpers import bucket

URL = "/api/v1/overview"


async def make_services(platform: Platform, actor: Actor, project: str, *names: str
                        ) -> dict[str, str]:
    """The project and its app services, through the library; their ids by name."""
    await projects.create_project(platform, actor, ProjectCreate(name=project))
    made = [await services.create_service(platform, actor, project, ServiceCreate(name=name))
            for name in names]
    return {service.name: service.id for service in made}


async def deployment(platform: Platform, owner: Account, service_id: str,
                     status: DeploymentStatus, minutes_ago: float) -> str:
    at = datetime.fromtimestamp(time.time() - minutes_ago * 60, UTC)
    done = status in (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED)

    async def tx(s: AsyncSession) -> str:
        row = Deployment(workspace_id=owner.workspace_id, service_id=service_id,
                         source_kind=SourceKind.IMAGE, status=status, created_at=at,
                         image_tag=f"reg/shop/web:deploy_{minutes_ago:g}",
                         finished_at=at if done else None)
        s.add(row)
        await s.flush()
        return row.id

    return await platform.db.write(tx)


async def stateful_service(platform: Platform, owner: Account, project_id: str) -> None:
    """A Redis service row (the library places and starts one on a server: not wanted here)."""
    async def tx(s: AsyncSession) -> None:
        s.add(Service(workspace_id=owner.workspace_id, project_id=project_id, name="cache",
                      kind=ServiceKind.REDIS))

    await platform.db.write(tx)


def services_of(found: dict[str, Any], project: str) -> dict[str, dict[str, Any]]:
    [wanted] = [p for p in found["projects"] if p["name"] == project]
    return {s["name"]: s for s in wanted["services"]}


async def test_each_service_shows_its_live_release_state_and_request_rate(
        client: httpx.AsyncClient, platform: Platform, owner: Account) -> None:
    actor = owner.actor(Role.OWNER)
    ids = await make_services(platform, actor, "shop", "web", "api", "worker")
    await projects.create_project(platform, actor, ProjectCreate(name="blog"))
    await deployment(platform, owner, ids["web"], DeploymentStatus.SUCCEEDED, 90)
    live = await deployment(platform, owner, ids["web"], DeploymentStatus.SUCCEEDED, 30)
    failed = await deployment(platform, owner, ids["web"], DeploymentStatus.FAILED, 5)
    await deployment(platform, owner, ids["api"], DeploymentStatus.RUNNING, 1)
    shop = (await projects.get_project(platform, actor, "shop")).id
    await stateful_service(platform, owner, shop)
    one = await add_server(platform, owner.workspace_id)
    two = await add_server(platform, owner.workspace_id, "node-2")
    minute = int(time.time()) // 60 * 60
    await store_buckets(platform, owner.workspace_id, one.id, [
        bucket(minute - 60, 100), bucket(minute - 3600, 5000)])  # the second is too old
    await store_buckets(platform, owner.workspace_id, two.id, [bucket(minute - 60, 50)])

    answer = await client.get(URL, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert [p["name"] for p in found["projects"]] == ["blog", "shop"]
    assert services_of(found, "blog") == {}
    shown = services_of(found, "shop")
    assert list(shown) == ["api", "cache", "web", "worker"]
    web = shown["web"]
    assert (web["state"], web["last_deployment_id"]) == ("failed", failed)
    assert web["live"]["deployment_id"] == live
    assert web["live"]["image_tag"] == "reg/shop/web:deploy_30"
    window = found["rate_window_seconds"]
    assert 300 <= window < 360
    assert abs(web["request_rate"] - 150 / (window - COLLECTION_LAG)) < 0.05
    assert (shown["api"]["state"], shown["api"]["live"]) == ("deploying", None)
    assert (shown["worker"]["state"], shown["worker"]["request_rate"]) == ("never_deployed", 0)
    assert (shown["cache"]["kind"], shown["cache"]["state"]) == ("redis", "stateful")


async def test_a_viewer_reads_it_and_another_workspace_sees_none_of_it(
        client: httpx.AsyncClient, platform: Platform, owner: Account, member_of: Any,
        stranger: Account) -> None:
    await make_services(platform, owner.actor(Role.OWNER), "shop", "web")
    viewer = await member_of(Role.VIEWER)
    seen = (await client.get(URL, headers=viewer.headers)).json()
    assert services_of(seen, "shop")["web"]["state"] == "never_deployed"
    other = await client.get(URL, headers=stranger.headers)
    assert (other.status_code, other.json()["projects"]) == (200, [])
    assert (await client.get(URL)).status_code == 401


@contextmanager
def statements(platform: Platform) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = platform.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def test_the_number_of_queries_does_not_grow_with_the_services(
        platform: Platform, owner: Account) -> None:
    actor = owner.actor(Role.OWNER)
    ids = await make_services(platform, actor, "shop", "web")
    await deployment(platform, owner, ids["web"], DeploymentStatus.SUCCEEDED, 3)
    with statements(platform) as few:
        await overview.overview(platform, actor)
    more = await make_services(platform, actor, "blog", *(f"app{n}" for n in range(8)))
    for service_id in more.values():
        await deployment(platform, owner, service_id, DeploymentStatus.SUCCEEDED, 3)
    with statements(platform) as many:
        found = await overview.overview(platform, actor)
    assert len(many) == len(few) == 5
    assert sum(len(p.services) for p in found.projects) == 9
