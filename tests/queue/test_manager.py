"""QueueManager against a real Redis and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.kernel.queue import BreakerState, CircuitBreaker, QueueManager, QueueUnavailable, keys
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.periodic import Periodic, Scheduler
from dockyard.kernel.queue.sources import StreamSource
from dockyard.models.queue import OutboxEvent
from tests.pg import free_port
from tests.queue.helpers import eventually


async def test_the_same_idempotency_key_twice_is_one_job(
    manager: QueueManager, redis: Redis
) -> None:
    first = await manager.enqueue("mail.send", {"to": "a"}, idempotency_key="welcome-1")
    second = await manager.enqueue("mail.send", {"to": "a"}, idempotency_key="welcome-1")
    other = await manager.enqueue("mail.send", {"to": "a"}, idempotency_key="welcome-2")
    assert (first.route, first.duplicate) == ("redis", False)
    assert second.duplicate
    assert not other.duplicate
    assert await redis.xlen(keys.stream("default")) == 2
    assert await manager.depth() == 2


async def test_a_delayed_job_waits_until_due(manager: QueueManager, redis: Redis) -> None:
    await manager.enqueue("later", {}, delay=0.3)
    source = StreamSource(manager.redis, ["default"], "c1")  # type: ignore[arg-type]
    await source.maintain()
    assert await redis.xlen(keys.stream("default")) == 0
    assert await redis.zcard(keys.delayed("default")) == 1

    async def promoted() -> bool:
        await source.maintain()
        return await redis.xlen(keys.stream("default")) == 1

    await eventually(promoted, within=5, what="promotion of the delayed job")
    assert await redis.zcard(keys.delayed("default")) == 0


async def test_enqueue_many_keeps_order(manager: QueueManager, redis: Redis) -> None:
    jobs = [Job("step", {"n": n}, key="k") for n in range(50)]
    await manager.enqueue_many(jobs)
    entries = await redis.xrange(keys.stream("default"))
    assert [Job.decode(f["job"]).payload["n"] for _id, f in entries] == list(range(50))


async def _outbox_rows(platform: Platform) -> list[OutboxEvent]:
    async def tx(s: AsyncSession) -> list[OutboxEvent]:
        return list((await s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all())

    return await platform.db.read(tx)


async def test_an_unreachable_redis_opens_the_breaker_and_jobs_go_to_the_outbox(
    platform: Platform,
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    breaker = CircuitBreaker(failure_threshold=2, reset_after=60)
    queue = QueueManager(dead_redis, db=platform.db, breaker=breaker)
    try:
        results = [await queue.enqueue("t", {"n": n}) for n in range(5)]
        duplicate = await queue.enqueue("t", {}, idempotency_key=results[0].job_id)
    finally:
        await queue.close()
    assert {r.route for r in results} == {"outbox"}
    assert breaker.state is BreakerState.OPEN
    assert duplicate.duplicate
    assert [row.payload["n"] for row in await _outbox_rows(platform)] == list(range(5))


async def test_an_open_breaker_stops_calling_redis_at_all(platform: Platform) -> None:
    """With the breaker open, enqueueing costs no wait on a Redis that does not answer."""
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # never answers
    port = listener.sockets[0].getsockname()[1]
    breaker = CircuitBreaker(failure_threshold=1, reset_after=60)
    queue = QueueManager(f"redis://127.0.0.1:{port}/0", db=platform.db, breaker=breaker,
                         socket_timeout=0.2)
    try:
        assert (await queue.enqueue("t", {})).route == "outbox"  # timed out once
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(20):
            assert (await queue.enqueue("t", {})).route == "outbox"
        assert loop.time() - started < 20 * 0.2 / 2
    finally:
        await queue.close()
        listener.close()


async def test_without_redis_or_database_a_job_cannot_be_queued() -> None:
    with pytest.raises(ValueError, match="needs a Redis URL"):
        QueueManager()
    queue = QueueManager(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(QueueUnavailable):
            await queue.enqueue("t", {})
    finally:
        await queue.close()


async def test_without_redis_the_outbox_is_the_queue(platform: Platform) -> None:
    queue = QueueManager(db=platform.db)
    result = await queue.enqueue("t", {"a": 1}, key="k1", idempotency_key="once")
    again = await queue.enqueue("t", {"a": 1}, key="k1", idempotency_key="once")
    assert (result.route, result.duplicate, again.duplicate) == ("outbox", False, True)
    assert await queue.depth() == 1
    rows = await _outbox_rows(platform)
    assert [(r.job_id, r.ordering_key, r.status) for r in rows] == [
        (result.job_id, "k1", "pending")]


async def test_periodic_ticks_are_enqueued_once_however_many_schedulers_run(
    manager: QueueManager, redis: Redis
) -> None:
    now = [1_767_225_600.0]  # 2026-01-01 00:00:00 UTC
    every_minute = [Periodic("sweep", "* * * * *", "sweep", {"full": True})]
    first = Scheduler(manager, every_minute, clock=lambda: now[0])
    second = Scheduler(manager, every_minute, clock=lambda: now[0])
    assert await first.tick() == 0
    now[0] += 60
    assert (await first.tick(), await second.tick()) == (1, 1)
    now[0] += 30
    assert await first.tick() == 0
    now[0] += 30
    await first.tick()
    await second.tick()
    entries = await redis.xrange(keys.stream("default"))
    assert [Job.decode(f["job"]).payload for _id, f in entries] == [{"full": True}] * 2


async def test_a_job_kept_behind_its_key_does_not_spend_the_half_open_probe(
    redis_url: str, platform: Platform
) -> None:
    """Once the outbox has drained, the next job of the key goes to Redis at once: an earlier
    job that went to the outbox behind its key did not use up the breaker's probe."""
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_after=1.0, clock=lambda: now[0])
    queue = QueueManager(redis_url=redis_url, db=platform.db, breaker=breaker)
    breaker.record_failure()  # Redis was unreachable: the key's job goes to the outbox
    assert (await queue.enqueue("step", {"n": 0}, key="k")).route == "outbox"
    now[0] = 5.0  # past reset_after, but the key still has a job in the outbox
    assert (await queue.enqueue("step", {"n": 1}, key="k")).route == "outbox"

    async def drain(s: AsyncSession) -> None:
        for row in (await s.scalars(select(OutboxEvent))).all():
            await s.delete(row)

    await platform.db.write(drain)  # what the relay does, in effect
    assert (await queue.enqueue("step", {"n": 2}, key="k")).route == "redis"
    assert breaker.state is BreakerState.CLOSED
    await queue.close()
