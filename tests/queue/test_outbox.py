"""The transactional outbox: written with the change, relayed in order, or read directly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.kernel.queue import JobContext, QueueManager, Tasks, add_event, keys
from dockyard.kernel.queue.dbsource import OutboxSource
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.relay import Relay
from dockyard.kernel.queue.worker import WorkerOptions
from dockyard.models.queue import OutboxEvent
from dockyard.models.tables import Workspace
from tests.queue.helpers import eventually, running_worker

FAST = WorkerOptions(block_ms=50, maintain_every=0.05, shutdown_grace=2)


async def _statuses(platform: Platform) -> list[str]:
    async def tx(s: AsyncSession) -> list[str]:
        return list((await s.scalars(select(OutboxEvent.status).order_by(OutboxEvent.id))).all())

    return await platform.db.read(tx)


async def test_an_event_exists_exactly_when_its_change_does(platform: Platform) -> None:
    async def create(s: AsyncSession) -> None:
        s.add(Workspace(name="kept"))
        await add_event(s, "workspace.created", {"name": "kept"})

    async def create_then_fail(s: AsyncSession) -> None:
        s.add(Workspace(name="rolled-back"))
        await add_event(s, "workspace.created", {"name": "rolled-back"})
        await s.flush()
        raise RuntimeError("the change fails after the event was written")

    await platform.db.write(create)
    with pytest.raises(RuntimeError):
        await platform.db.write(create_then_fail)

    async def payloads(s: AsyncSession) -> list[dict[str, Any]]:
        return list((await s.scalars(select(OutboxEvent.payload))).all())

    assert await platform.db.read(payloads) == [{"name": "kept"}]


async def test_the_relay_moves_rows_in_order_and_marks_them_delivered(
    platform: Platform, manager: QueueManager, redis: Redis
) -> None:
    async def emit(s: AsyncSession) -> None:
        for n in range(20):
            await add_event(s, "step", {"n": n}, key=f"k{n % 3}")

    await platform.db.write(emit)
    relay = Relay(manager, batch_size=7)
    while await relay.relay_once():
        pass
    entries = await redis.xrange(keys.stream("default"))
    assert [Job.decode(f["job"]).payload["n"] for _id, f in entries] == list(range(20))
    assert await _statuses(platform) == ["delivered"] * 20
    assert relay.relayed == 20


async def test_a_row_relayed_twice_is_still_one_job(
    platform: Platform, manager: QueueManager, redis: Redis
) -> None:
    """The relay may die after Redis took a batch but before the database commit."""

    async def emit(s: AsyncSession) -> None:
        await add_event(s, "once", {})

    await platform.db.write(emit)

    async def first_row(s: AsyncSession) -> OutboxEvent:
        return (await s.scalars(select(OutboxEvent))).one()

    row = await platform.db.read(first_row)
    assert manager.streams is not None
    relayed_before = Job("once", {}, id=row.job_id, idempotency_key=row.idempotency_key)
    await manager.streams.enqueue(relayed_before)
    await Relay(manager).relay_once()
    assert await redis.xlen(keys.stream("default")) == 1


async def test_without_redis_workers_read_the_outbox(platform: Platform) -> None:
    tasks, seen = Tasks(), []

    @tasks.task("note")
    async def note(ctx: JobContext, payload: dict[str, Any]) -> None:
        seen.append(payload["n"])

    queue = QueueManager(db=platform.db)
    for n in range(10):
        await queue.enqueue("note", {"n": n})
    source = OutboxSource(platform.db, "default", ["default"], "db-worker")
    async with running_worker(source, tasks, FAST) as worker:
        await eventually(lambda: _equals(worker.processed, 10), what="ten jobs")
    assert sorted(seen) == list(range(10))
    assert await _statuses(platform) == ["done"] * 10
    assert await queue.depth() == 0


async def _equals(value: int, expected: int) -> bool:
    return value == expected


async def test_outbox_queue_retries_then_buries(platform: Platform) -> None:
    tasks, attempts = Tasks(), []

    @tasks.task("doomed", max_attempts=3, retry_base=0.05)
    async def doomed(ctx: JobContext, payload: dict[str, Any]) -> None:
        assert ctx.job is not None
        attempts.append(ctx.job.attempt)
        raise RuntimeError("always")

    await QueueManager(db=platform.db).enqueue("doomed", {})
    source = OutboxSource(platform.db, "default", ["default"], "db-worker")
    async with running_worker(source, tasks, FAST):
        await eventually(lambda: _has_status(platform, "dead"), what="the dead row")
    assert attempts == [1, 2, 3]


async def _has_status(platform: Platform, status: str) -> bool:
    return status in await _statuses(platform)


async def test_outbox_queue_delays_a_job(platform: Platform) -> None:
    queue = QueueManager(db=platform.db)
    await queue.enqueue("later", {}, delay=60)
    source = OutboxSource(platform.db, "default", ["default"], "db-worker")
    assert await source.fetch(10, 0) == []
    await queue.enqueue("now", {})
    assert [d.job.task for d in await source.fetch(10, 0)] == ["now"]


async def test_a_lease_of_a_dead_outbox_worker_runs_out_and_another_takes_the_job(
    platform: Platform,
) -> None:
    await QueueManager(db=platform.db).enqueue("job", {"n": 1})
    crashed = OutboxSource(platform.db, "default", ["default"], "crashed", lease=0.3)
    [taken] = await crashed.fetch(10, 0)
    survivor = OutboxSource(platform.db, "default", ["default"], "survivor", lease=30)
    assert await survivor.fetch(10, 0) == [], "leased to the first worker"
    await asyncio.sleep(0.35)  # the lease itself is the thing under test
    [again] = await survivor.fetch(10, 0)
    assert again.job.id == taken.job.id
    await survivor.ack([again])
    await crashed.ack([taken])  # too late: the row belongs to the survivor now
    assert await _statuses(platform) == ["done"]
