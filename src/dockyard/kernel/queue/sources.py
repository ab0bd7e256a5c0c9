"""Where a worker takes jobs from: a Redis stream's consumer group. The outbox table plays the
same part without Redis (dbsource.py). Both settle a job only after its handler returned."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from dockyard.kernel.queue import keys
from dockyard.kernel.queue.jobs import Delivery, Job
from dockyard.kernel.queue.streams import Streams, now_ms

DEAD_KEPT = 10_000  # the default of DOCKYARD_DEAD_JOBS_MAX_ROWS


class JobSource(Protocol):
    async def fetch(self, count: int, block_ms: int) -> list[Delivery]: ...
    async def ack(self, deliveries: Sequence[Delivery]) -> None: ...
    async def retry(self, delivery: Delivery, delay: float, error: str) -> None: ...
    async def bury(self, delivery: Delivery, error: str) -> None: ...
    async def release(self, deliveries: Sequence[Delivery]) -> None: ...
    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None: ...
    async def maintain(self) -> list[Delivery]: ...
    def interrupt(self) -> None: ...


def _deliveries(entries: Sequence[Any]) -> list[Delivery]:
    """Stream entries as deliveries; entries deleted meanwhile come back empty and are skipped."""
    return [
        Delivery(Job.decode(fields[keys.JOB_FIELD]), entry_id)
        for entry_id, fields in entries
        if fields
    ]


def _ids_by_stream(deliveries: Sequence[Delivery]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for delivery in deliveries:
        grouped.setdefault(keys.stream(delivery.job.queue), []).append(delivery.handle)
    return grouped


class StreamSource:
    """Consumer `consumer` of the group on the streams of `queues`. Jobs whose worker went
    silent for `reclaim_after` seconds are claimed by the next `maintain` (XAUTOCLAIM). Each
    dead-letter stream keeps its newest `dead_kept` jobs."""

    def __init__(
        self, redis: Redis, queues: Sequence[str], consumer: str, reclaim_after: float = 30.0,
        dead_kept: int = DEAD_KEPT,
    ) -> None:
        self.redis = redis
        self.dead_kept = dead_kept
        self.streams = Streams(redis)
        self.queues = list(queues)
        self.consumer = consumer
        self.reclaim_after_ms = int(reclaim_after * 1000)
        self._groups_ready = False

    async def ensure_groups(self) -> None:
        for queue in self.queues:
            try:
                await self.redis.xgroup_create(keys.stream(queue), keys.GROUP, "0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    @contextlib.asynccontextmanager
    async def _with_groups(self) -> AsyncIterator[None]:
        """Create the groups first; again after a Redis that restarted without them."""
        if not self._groups_ready:
            await self.ensure_groups()
        try:
            yield
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._groups_ready = False
            raise

    async def fetch(self, count: int, block_ms: int) -> list[Delivery]:
        wanted: Any = {keys.stream(queue): ">" for queue in self.queues}
        async with self._with_groups():
            answer = await self.redis.xreadgroup(
                keys.GROUP, self.consumer, wanted, count=count, block=block_ms
            )
        return [d for _stream, entries in answer or [] for d in _deliveries(entries)]

    @staticmethod
    def _stream_of(delivery: Delivery) -> str:
        return keys.stream(delivery.job.queue)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge and delete finished entries: two commands per stream, one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for stream, ids in _ids_by_stream(deliveries).items():
                pipe.xack(stream, keys.GROUP, *ids)
                pipe.xdel(stream, *ids)
            await pipe.execute()

    @contextlib.asynccontextmanager
    async def _settling(self, delivery: Delivery) -> AsyncIterator[Pipeline]:
        """Commands queued on the pipeline run in one transaction with the entry's removal."""
        stream = self._stream_of(delivery)
        async with self.redis.pipeline(transaction=True) as pipe:
            yield pipe
            pipe.xack(stream, keys.GROUP, delivery.handle)
            pipe.xdel(stream, delivery.handle)
            await pipe.execute()

    async def retry(self, delivery: Delivery, delay: float, error: str) -> None:
        due = now_ms() + int(delay * 1000)
        async with self._settling(delivery) as pipe:
            pipe.zadd(keys.delayed(delivery.job.queue), {delivery.job.next_attempt().encode(): due})

    async def bury(self, delivery: Delivery, error: str) -> None:
        fields: Any = {keys.JOB_FIELD: delivery.job.encode(), "error": error[:2000]}
        async with self._settling(delivery) as pipe:
            pipe.xadd(keys.dead(delivery.job.queue), fields, maxlen=self.dead_kept,
                      approximate=False)  # exact: dead letters are few, and the bound is read

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand jobs back at once (shutdown) instead of letting them wait to be reclaimed."""
        for delivery in deliveries:
            fields: Any = {keys.JOB_FIELD: delivery.job.encode()}
            async with self._settling(delivery) as pipe:
                pipe.xadd(self._stream_of(delivery), fields)

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        """Reset the idle time of jobs still in hand, so nobody reclaims a slow job."""
        for stream, ids in _ids_by_stream(deliveries).items():
            await self.redis.xclaim(stream, keys.GROUP, self.consumer, 0, ids, justid=True)

    def interrupt(self) -> None:
        """Nothing to do: a fetch blocks for `block_ms` at most, well under a second."""

    async def maintain(self) -> list[Delivery]:
        """Promote due delayed jobs; claim jobs of workers silent too long."""
        claimed: list[Delivery] = []
        for queue in self.queues:
            await self.streams.promote_due(queue)
            async with self._with_groups():
                answer = await self.redis.xautoclaim(
                    keys.stream(queue), keys.GROUP, self.consumer, self.reclaim_after_ms, count=100
                )
            claimed += _deliveries(answer[1])
        return claimed
