"""The worker on a real Redis: ack after success, retries, dead letters, hand back, ids."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from dockyard.kernel.context import bind_request_id, current_request_id
from dockyard.kernel.logging import RequestIdFilter
from dockyard.kernel.queue import JobContext, QueueManager, Tasks, keys
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.sources import StreamSource
from dockyard.kernel.queue.worker import WorkerOptions
from tests.queue.helpers import eventually, running_worker

FAST = WorkerOptions(block_ms=50, maintain_every=0.05, shutdown_grace=2)


def source_for(manager: QueueManager, name: str = "w1", reclaim_after: float = 30) -> StreamSource:
    assert manager.redis is not None
    return StreamSource(manager.redis, ["default"], name, reclaim_after)


async def pending(redis: Redis) -> int:
    summary = await redis.xpending(keys.stream("default"), keys.GROUP)
    return int(summary["pending"])


async def test_a_job_is_acknowledged_only_after_its_handler_succeeds(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, release, seen = Tasks(), asyncio.Event(), []

    @tasks.task("slow")
    async def slow(ctx: JobContext, payload: dict[str, Any]) -> None:
        seen.append(payload["n"])
        await release.wait()

    await manager.enqueue("slow", {"n": 1})
    async with running_worker(source_for(manager), tasks, FAST) as worker:
        await eventually(lambda: _true(seen), what="the handler to start")
        assert await pending(redis) == 1, "in hand, not yet acknowledged"
        release.set()
        await eventually(lambda: _equals(worker.processed, 1), what="processing")
    assert await pending(redis) == 0
    assert await redis.xlen(keys.stream("default")) == 0


async def _true(items: Sequence[object]) -> bool:
    return bool(items)


async def _equals(value: int, expected: int) -> bool:
    return value == expected


async def test_a_failing_job_is_retried_with_backoff_then_succeeds(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, attempts = Tasks(), []

    @tasks.task("flaky", retry_base=0.2)
    async def flaky(ctx: JobContext, payload: dict[str, Any]) -> None:
        assert ctx.job is not None
        attempts.append((ctx.job.attempt, asyncio.get_running_loop().time()))
        if ctx.job.attempt < 3:
            raise RuntimeError("not yet")

    await manager.enqueue("flaky", {})
    async with running_worker(source_for(manager), tasks, FAST) as worker:
        await eventually(lambda: _equals(worker.processed, 1), what="the third attempt")
    assert [n for n, _at in attempts] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
    assert 0.18 <= gaps[0] < gaps[1], "0.2 s then about 0.4 s"
    assert await manager.depth() == 0


async def test_a_job_out_of_attempts_goes_to_the_dead_letter_stream(
    manager: QueueManager, redis: Redis
) -> None:
    tasks = Tasks()

    @tasks.task("doomed", max_attempts=2, retry_base=0.05)
    async def doomed(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise ValueError("bad input")

    sent = await manager.enqueue("doomed", {"x": 1})
    async with running_worker(source_for(manager), tasks, FAST):
        await eventually(lambda: _stream_has(redis, keys.dead("default")), what="a dead letter")
    [(_id, fields)] = await redis.xrange(keys.dead("default"))
    dead = Job.decode(fields["job"])
    assert (dead.id, dead.attempt) == (sent.job_id, 2)
    assert "ValueError: bad input" in fields["error"]
    assert await manager.depth() == 0


async def _stream_has(redis: Redis, stream: str) -> bool:
    return bool(await redis.xlen(stream))


async def test_an_unknown_task_is_dead_lettered(manager: QueueManager, redis: Redis) -> None:
    await manager.enqueue("nobody.handles.this", {})
    async with running_worker(source_for(manager), Tasks(), FAST):
        await eventually(lambda: _stream_has(redis, keys.dead("default")), what="a dead letter")


async def test_a_batch_handler_gets_many_jobs_in_one_call(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, calls = Tasks(), []

    @tasks.batch("store")
    async def store(ctx: JobContext, jobs: Sequence[Job]) -> None:
        calls.append([job.payload["n"] for job in jobs])

    await manager.enqueue_many([Job("store", {"n": n}) for n in range(30)])
    async with running_worker(source_for(manager), tasks, FAST) as worker:
        await eventually(lambda: _equals(worker.processed, 30), what="30 jobs")
    assert sorted(n for call in calls for n in call) == list(range(30))
    assert len(calls) < 30


async def test_the_correlation_id_travels_into_the_job_and_its_logs(
    manager: QueueManager, caplog: pytest.LogCaptureFixture
) -> None:
    tasks, seen = Tasks(), []

    @tasks.task("traced")
    async def traced(ctx: JobContext, payload: dict[str, Any]) -> None:
        seen.append(current_request_id())
        logging.getLogger("tests.traced").warning("inside the job")

    bind_request_id("req-abc-123")
    await manager.enqueue("traced", {})
    bind_request_id("other")
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.WARNING):
        async with running_worker(source_for(manager), tasks, FAST) as worker:
            await eventually(lambda: _equals(worker.processed, 1), what="the traced job")
    assert seen == ["req-abc-123"]
    [record] = [r for r in caplog.records if r.name == "tests.traced"]
    assert record.request_id == "req-abc-123"  # type: ignore[attr-defined]


async def test_on_shutdown_an_unfinished_job_is_handed_back(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, started = Tasks(), asyncio.Event()

    @tasks.task("endless")
    async def endless(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    sent = await manager.enqueue("endless", {"n": 7})
    options = WorkerOptions(block_ms=50, shutdown_grace=0.2)
    async with running_worker(source_for(manager), tasks, options):
        await asyncio.wait_for(started.wait(), 10)
    assert await pending(redis) == 0, "nothing left in a dead worker's hands"
    [(_id, fields)] = await redis.xrange(keys.stream("default"))
    assert Job.decode(fields["job"]).id == sent.job_id


async def test_on_shutdown_a_job_finishing_within_the_grace_period_completes(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, started, finished = Tasks(), asyncio.Event(), []

    @tasks.task("short")
    async def short(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(True)

    await manager.enqueue("short", {})
    async with running_worker(source_for(manager), tasks, FAST):
        await asyncio.wait_for(started.wait(), 10)
    assert finished == [True]
    assert await manager.depth() == 0


async def test_a_coalescing_task_runs_once_for_a_backlog_and_never_twice_at_once(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, release, runs = Tasks(), asyncio.Event(), []

    @tasks.task("pass", coalesce=True)
    async def look(ctx: JobContext, payload: dict[str, Any]) -> None:
        runs.append(payload["tick"])
        await release.wait()

    for tick in range(5):  # ticks queued while no worker ran: one run covers them all
        await manager.enqueue("pass", {"tick": tick})
    async with running_worker(source_for(manager), tasks, FAST):
        await eventually(lambda: _true(runs), what="the first run")
        await manager.enqueue("pass", {"tick": 5})  # while that run goes on: covered too
        await eventually(lambda: _queued_is(redis, 1), what="the covered jobs settled")
        release.set()
        await manager.enqueue("pass", {"tick": 6})  # after that run started: it runs
        await eventually(lambda: _equals(len(runs), 2), what="the next run")
        await eventually(lambda: _pending_is(redis, 0), what="every job settled")
    assert runs == [0, 6]


async def _queued_is(redis: Redis, count: int) -> bool:
    """`count` jobs left on the stream, delivered or not (a settled job is deleted)."""
    return int(await redis.xlen(keys.stream("default"))) == count


async def _pending_is(redis: Redis, count: int) -> bool:
    return await pending(redis) == count


async def test_a_slow_job_does_not_hold_back_the_jobs_queued_after_it(
    manager: QueueManager, redis: Redis
) -> None:
    tasks, release, slow_ran, quick_ran = Tasks(), asyncio.Event(), asyncio.Event(), asyncio.Event()

    @tasks.task("slow")
    async def slow(ctx: JobContext, payload: dict[str, Any]) -> None:
        slow_ran.set()
        await release.wait()

    @tasks.task("quick")
    async def quick(ctx: JobContext, payload: dict[str, Any]) -> None:
        quick_ran.set()

    await manager.enqueue("slow", {})
    async with running_worker(source_for(manager), tasks, FAST):
        await asyncio.wait_for(slow_ran.wait(), 20)
        await manager.enqueue("quick", {})
        await asyncio.wait_for(quick_ran.wait(), 20)
        assert not release.is_set()  # the slow job still runs
        release.set()
        await eventually(lambda: _pending_is(redis, 0), what="both settled")
