"""Redis Streams operations: atomic idempotent enqueue, delayed jobs, queue depth."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dockyard.kernel.queue import keys
from dockyard.kernel.queue.jobs import Job

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS[1] = stream, KEYS[2] = delayed set, KEYS[2 + i] = idempotency marker of job i;
# ARGV[1] = marker ttl ms, ARGV[2i] = due ms of job i (0: now), ARGV[2i + 1] = job i.
_ENQUEUE = """
local added = {}
for i = 1, #KEYS - 2 do
  added[i] = 0
  if redis.call('SET', KEYS[2 + i], '1', 'NX', 'PX', ARGV[1]) then
    local due, job = tonumber(ARGV[2 * i]), ARGV[2 * i + 1]
    if due > 0 then
      redis.call('ZADD', KEYS[2], due, job)
    else
      redis.call('XADD', KEYS[1], '*', 'job', job)
    end
    added[i] = 1
  end
end
return added
"""
MAX_PER_CALL = 1000  # jobs per script call: one round trip, bounded argument size

# KEYS: delayed set, stream. ARGV: now ms, most to move.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def _runs_by_queue(jobs: Sequence[tuple[Job, int]]) -> list[list[tuple[Job, int]]]:
    """Consecutive jobs of the same queue, at most MAX_PER_CALL in a run."""
    runs: list[list[tuple[Job, int]]] = []
    for item in jobs:
        if runs and runs[-1][0][0].queue == item[0].queue and len(runs[-1]) < MAX_PER_CALL:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class Streams:
    """The producer side of one Redis: every write is one atomic script call."""

    def __init__(self, redis: Redis, idempotency_ttl: float = 86_400.0) -> None:
        self.redis = redis
        self.ttl_ms = int(idempotency_ttl * 1000)
        self._enqueue = redis.register_script(_ENQUEUE)
        self._promote = redis.register_script(_PROMOTE)

    async def enqueue(self, job: Job, due_ms: int = 0) -> bool:
        """Add the job (to the delayed set when due later). False if its key was seen."""
        [added] = await self.enqueue_many([(job, due_ms)])
        return added

    async def enqueue_many(self, jobs: Sequence[tuple[Job, int]]) -> list[bool]:
        """Several (job, due ms) in order: one script call per run of jobs of one queue."""
        added: list[bool] = []
        for run in _runs_by_queue(jobs):
            names, args = self._arguments(run)
            added += [bool(flag) for flag in await self._enqueue(keys=names, args=args)]
        return added

    def _arguments(self, run: Sequence[tuple[Job, int]]) -> tuple[list[str], list[str | int]]:
        queue, now = run[0][0].queue, now_ms()
        names = [keys.stream(queue), keys.delayed(queue)]
        args: list[str | int] = [self.ttl_ms]
        for job, due_ms in run:
            names.append(keys.idempotency(queue, job.idempotency_key))
            args += [due_ms if due_ms > now else 0, job.encode()]
        return names, args

    async def promote_due(self, queue: str, limit: int = 500) -> int:
        """Move delayed jobs whose time has come onto the stream."""
        names = [keys.delayed(queue), keys.stream(queue)]
        return int(await self._promote(keys=names, args=[now_ms(), limit]))

    async def depth(self, queue: str) -> int:
        """Jobs not yet finished: waiting, in a worker's hands, or delayed."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keys.stream(queue))
            pipe.zcard(keys.delayed(queue))
            waiting, delayed = await pipe.execute()
        return int(waiting) + int(delayed)

    async def dead_letters(self, queue: str, count: int = 100) -> list[Job]:
        entries = await self.redis.xrange(keys.dead(queue), count=count)
        return [Job.decode(fields[keys.JOB_FIELD]) for _id, fields in entries]
