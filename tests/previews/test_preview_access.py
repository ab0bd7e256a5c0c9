"""A preview's read-only access to its project's stateful services, against a real agent app
on this machine's Docker running a real Postgres and Redis: the URLs a preview is injected
with read, never write, and stop working once the preview's users are dropped."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from sqlalchemy import select

from dockyard.core import preview_access
from dockyard.core.platform import Platform
from dockyard.core.stateful import project_links
from dockyard.deploy.runner import DeployRunner
from dockyard.models.enums import ServiceKind
from dockyard.models.tables import Service
from tests.api.test_stateful import (
    api,
    docker_host,
    leftovers,
    namespace,
    published,
    runner,
    secret_url,
    shop,
)
from tests.real_agent import SQLITE_ONLY

pytestmark = pytest.mark.slow
STATEFUL = "/api/v1/projects/shop/stateful"
__all__ = ["api", "docker_host", "leftovers", "namespace", "runner", "shop"]  # fixtures


async def create(api: httpx.AsyncClient, shop: Any, name: str, kind: str) -> tuple[str, int]:
    """The service's owner URL as this machine reaches it, and its port."""
    answer = await api.post(STATEFUL, json={"name": name, "kind": kind}, headers=shop.headers)
    assert answer.status_code == 201, answer.text
    port = answer.json()["port"]
    return published(await secret_url(api, shop, name), port), port


async def a_preview(platform: Platform, shop: Any, api: httpx.AsyncClient) -> str:
    answer = await api.post("/api/v1/projects/shop/services", json={"name": "web"},
                            headers=shop.headers)
    assert answer.status_code == 201, answer.text

    async def tx(s: Any) -> str:
        row = Service(workspace_id=shop.workspace_id, project_id=answer.json()["project_id"],
                      name="web-pr-3", kind=ServiceKind.APP, config={},
                      preview_of=answer.json()["id"], preview_number=3)
        s.add(row)
        await s.flush()
        return row.id

    return await platform.db.write(tx)


async def preview_urls(platform: Platform, preview_id: str, ports: dict[str, int]
                       ) -> dict[str, str]:
    """The URLs the preview is injected with, as this machine reaches them."""
    async def tx(s: Any) -> dict[str, str]:
        preview = (await s.scalars(select(Service).where(Service.id == preview_id))).one()
        links = await project_links(platform, s, preview.project_id)
        return {x.service: published(x.url, ports[x.service])
                for x in preview_access.read_only_links(links, preview_id)}

    return await platform.db.read(tx)


@SQLITE_ONLY
async def test_a_preview_reads_postgres_and_redis_and_cannot_write(
        api: httpx.AsyncClient, shop: Any, platform: Platform, runner: DeployRunner) -> None:
    pg_url, pg_port = await create(api, shop, "postgres", "postgres")
    redis_url, redis_port = await create(api, shop, "redis", "redis")
    owner = await asyncpg.connect(pg_url)
    await owner.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    await owner.close()
    async with aioredis.from_url(redis_url) as cache:
        await cache.set("k", "v")
    preview = await a_preview(platform, shop, api)
    for _ in range(2):  # again: each deploy of the preview grants again
        await preview_access.grant(platform, runner.connect, "shop", preview)
    urls = await preview_urls(platform, preview, {"postgres": pg_port, "redis": redis_port})
    assert f"preview_{preview}:" in urls["postgres"]

    reader = await asyncpg.connect(urls["postgres"])
    try:
        assert await reader.fetchval("SELECT n FROM kept") == 7
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.execute("INSERT INTO kept VALUES (8)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute("BEGIN READ WRITE; INSERT INTO kept VALUES (8)")
    finally:
        await reader.close()
    async with aioredis.from_url(urls["redis"]) as cache:
        assert await cache.get("k") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError):
            await cache.set("k", "changed")
        assert await cache.get("k") == b"v"

    await preview_access.revoke(platform, runner.connect, "shop", preview)
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(urls["postgres"])
    async with aioredis.from_url(urls["redis"]) as cache:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await cache.get("k")
