"""Queue fixtures: a real Redis per session (flushed for each test), managers on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from dockyard.core.platform import Platform
from dockyard.kernel.queue import QueueManager
from tests.queue.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def manager(redis_url: str, platform: Platform) -> AsyncIterator[QueueManager]:
    queue = QueueManager(redis_url=redis_url, db=platform.db)
    yield queue
    await queue.close()


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, with an fsync'd append-only file, for tests that kill it."""
    server = RedisServer(durable=True).start()
    yield server
    server.stop()
