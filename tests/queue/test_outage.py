"""Redis dies while events are emitted: nothing is lost, and order per key holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from dockyard.core.platform import Platform
from dockyard.kernel.queue import CircuitBreaker, JobContext, QueueManager, Tasks, keys
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.outbox import pending_count
from dockyard.kernel.queue.relay import Relay
from dockyard.kernel.queue.sources import StreamSource
from dockyard.kernel.queue.worker import WorkerOptions
from tests.queue.helpers import eventually, running_worker
from tests.queue.redis_server import RedisServer

TOTAL = 100_000
BATCH = 500


def quick_breaker() -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=2, reset_after=0.2)


@asynccontextmanager
async def running_relay(url: str, platform: Platform) -> AsyncIterator[Relay]:
    """A relay with its own connection and breaker, as in its own process."""
    manager = QueueManager(url, db=platform.db, breaker=quick_breaker(), socket_timeout=1)
    relay, stop = Relay(manager, batch_size=1000, idle_poll=0.02), asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await task
        await manager.close()


async def outbox_drained(platform: Platform) -> bool:
    return await platform.db.read(lambda s: pending_count(s, "default")) == 0


async def test_killing_redis_mid_stream_loses_none_of_100k_events(
    durable_redis: RedisServer, platform: Platform
) -> None:
    url, processed, routes = durable_redis.url, set[int](), []
    tasks = Tasks()

    @tasks.batch("event")
    async def record(ctx: JobContext, jobs: Sequence[Job]) -> None:
        processed.update(job.payload["n"] for job in jobs)

    emitter = QueueManager(url, db=platform.db, breaker=quick_breaker(), socket_timeout=1)
    consumer = QueueManager(url, db=platform.db)
    assert consumer.redis is not None
    source = StreamSource(consumer.redis, ["default"], "survivor", reclaim_after=1)
    options = WorkerOptions(batch_size=1000, block_ms=100, maintain_every=0.5, shutdown_grace=5)
    async with running_relay(url, platform), running_worker(source, tasks, options):
        for start in range(0, TOTAL, BATCH):
            if start == 30_000:
                durable_redis.kill()
            if start == 60_000:
                durable_redis.start()
            jobs = [Job("event", {"n": n}) for n in range(start, start + BATCH)]
            routes.append(await emitter.enqueue_many(jobs))
            await asyncio.sleep(0)

        async def all_processed() -> bool:
            return len(processed) == TOTAL and await outbox_drained(platform)

        await eventually(all_processed, within=90, what="all events processed")
    await emitter.close()
    await consumer.close()
    assert processed == set(range(TOTAL))
    assert routes.count("outbox") >= 60, "the outage batches went to the outbox"
    assert routes[-1] == "redis", "the breaker closed again once Redis was back"


async def test_order_per_key_holds_through_an_outage(
    durable_redis: RedisServer, platform: Platform
) -> None:
    url, per_key, emitted = durable_redis.url, 200, []
    emitter = QueueManager(url, db=platform.db, breaker=quick_breaker(), socket_timeout=1)
    async with running_relay(url, platform):
        for n in range(per_key):
            if n == 60:
                durable_redis.kill()
            if n == 120:
                durable_redis.start()
            if n == per_key - 1:  # once the outage's backlog is gone, Redis takes keys again
                await eventually(lambda: outbox_drained(platform), what="the relay to drain")
            for key in ("a", "b", "c"):
                emitted.append((await emitter.enqueue("step", {"n": n}, key=key)).route)
        await eventually(lambda: outbox_drained(platform), what="the relay to drain")
    await emitter.close()
    redis = Redis.from_url(url, decode_responses=True)
    entries = await redis.xrange(keys.stream("default"))
    await redis.aclose()
    jobs = [Job.decode(fields["job"]) for _id, fields in entries]
    for key in ("a", "b", "c"):
        assert [j.payload["n"] for j in jobs if j.key == key] == list(range(per_key))
    assert "outbox" in emitted
    assert emitted[-1] == "redis"
