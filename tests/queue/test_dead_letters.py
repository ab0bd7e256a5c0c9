"""Dead letters on a real Redis are bounded: each queue's dead-letter stream keeps its newest
`dead_kept` jobs (the worker passes DOCKYARD_DEAD_JOBS_MAX_ROWS), so a task that fails for
ever cannot fill Redis's memory."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from dockyard.kernel.queue import JobContext, QueueManager, Tasks, keys
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.sources import StreamSource
from tests.queue.helpers import eventually, running_worker
from tests.queue.test_worker import FAST, pending


async def test_the_dead_letter_stream_keeps_its_newest_jobs(manager: QueueManager,
                                                           redis: Redis) -> None:
    tasks, tried = Tasks(), []

    @tasks.task("doomed", max_attempts=1)
    async def doomed(ctx: JobContext, payload: dict[str, Any]) -> None:
        tried.append(payload["n"])
        raise ValueError(f"bad input {payload['n']}")

    sent = [await manager.enqueue("doomed", {"n": n}) for n in range(5)]
    assert manager.redis is not None
    source = StreamSource(manager.redis, ["default"], "w1", dead_kept=2)
    async with running_worker(source, tasks, FAST):
        async def all_buried() -> bool:
            return len(tried) == 5 and await pending(redis) == 0

        await eventually(all_buried, what="five dead letters")
    dead = [Job.decode(fields["job"]).id for _, fields in await redis.xrange(keys.dead("default"))]
    assert dead == [s.job_id for s in sent[-2:]]
