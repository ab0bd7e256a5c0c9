"""QueueManager: one per Redis URL, each with its own circuit breaker and the outbox behind it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.db import Database
from dockyard.kernel.queue import outbox
from dockyard.kernel.queue.breaker import BreakerState, CircuitBreaker
from dockyard.kernel.queue.jobs import DEFAULT_QUEUE, Job
from dockyard.kernel.queue.streams import Streams, now_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("dockyard.queue")


class QueueUnavailable(Exception):
    """Redis cannot take the job and there is no database to hold it."""


Route = Literal["redis", "outbox"]


@dataclass(frozen=True)
class EnqueueResult:
    job_id: str
    route: Route
    duplicate: bool


def connect(redis_url: str, socket_timeout: float = 2.0) -> Redis:
    """A client that fails fast: a dead Redis must not keep callers waiting."""
    from redis.asyncio import Redis  # the redis package only in processes that use one

    client: Redis = Redis.from_url(
        redis_url, decode_responses=True, socket_timeout=socket_timeout,
        socket_connect_timeout=min(socket_timeout, 1.0), retry_on_timeout=False,
    )
    return client


class QueueManager:
    """Enqueue jobs on one Redis (`redis_url`), or on the database outbox when Redis is not
    configured, not reachable (breaker open), or still has older jobs of the same key there."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        db: Database | None = None,
        broker: str = outbox.DEFAULT_BROKER,
        breaker: CircuitBreaker | None = None,
        idempotency_ttl: float = 86_400.0,
        socket_timeout: float = 2.0,
    ) -> None:
        if redis_url is None and db is None:
            raise ValueError("a queue needs a Redis URL, a database, or both")
        self.redis_url = redis_url
        self.db = db
        self.broker = broker
        self.breaker = breaker or CircuitBreaker()
        self.redis = connect(redis_url, socket_timeout) if redis_url else None
        self.streams = Streams(self.redis, idempotency_ttl) if self.redis else None
        self._keys_in_outbox: set[str] = set()

    async def enqueue(
        self,
        task: str,
        payload: dict[str, Any] | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        key: str | None = None,
        idempotency_key: str | None = None,
        delay: float = 0.0,
    ) -> EnqueueResult:
        """Queue one job; the same idempotency key twice is one job (within the key's ttl)."""
        job = Job(task, payload or {}, queue, key=key, idempotency_key=idempotency_key or "")
        return await self.enqueue_job(job, delay)

    async def enqueue_job(self, job: Job, delay: float = 0.0) -> EnqueueResult:
        if self.streams and await self._redis_may_take([job]):
            try:
                added = await self.streams.enqueue(job, _due_ms(delay))
            except _redis_error() as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return EnqueueResult(job.id, "redis", duplicate=not added)
        added_rows = await self._to_outbox([job], delay)
        return EnqueueResult(job.id, "outbox", duplicate=added_rows == 0)

    async def enqueue_many(self, jobs: Sequence[Job]) -> Route:
        """Queue several jobs in one round trip (Redis) or one transaction (outbox)."""
        if self.streams and await self._redis_may_take(jobs):
            try:
                await self.streams.enqueue_many([(job, 0) for job in jobs])
            except _redis_error() as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return "redis"
        await self._to_outbox(jobs, 0.0)
        return "outbox"

    async def depth(self, queue: str = DEFAULT_QUEUE) -> int:
        """Jobs waiting on Redis (when reachable) plus jobs still in the outbox."""
        waiting = 0
        if self.streams and self.breaker.allow():
            try:
                waiting = await self.streams.depth(queue)
                self._succeeded()
            except _redis_error() as exc:
                self._failed(exc)
        return waiting + await self._outbox_depth(queue)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def _redis_may_take(self, jobs: Sequence[Job]) -> bool:
        """Not before older jobs of a key left the outbox, nor while the breaker is open. The
        breaker is asked last: when half-open, `allow` hands out its one probe, which must
        not be spent on a job that then goes to the outbox anyway."""
        keys = {job.key for job in jobs if job.key in self._keys_in_outbox}
        for key in keys:
            if key is not None and await self._key_still_in_outbox(key):
                return False
        return self.breaker.allow()

    async def _key_still_in_outbox(self, key: str) -> bool:
        assert self.db is not None  # a key only enters the set through the outbox
        pending = await self.db.read(lambda s: outbox.has_pending_key(s, self.broker, key))
        if not pending:
            self._keys_in_outbox.discard(key)
        return pending

    def _failed(self, exc: Exception) -> None:
        before = self.breaker.state
        self.breaker.record_failure()
        if before is not BreakerState.OPEN and self.breaker.state is BreakerState.OPEN:
            log.warning("redis unreachable; jobs go to the outbox until it answers again",
                        extra={"broker": self.broker, "error": str(exc)})

    def _succeeded(self) -> None:
        if self.breaker.state is not BreakerState.CLOSED:
            log.info("redis answers again; the relay moves the outbox to it",
                     extra={"broker": self.broker})
        self.breaker.record_success()

    async def _to_outbox(self, jobs: Sequence[Job], delay: float) -> int:
        if self.db is None:
            raise QueueUnavailable(f"redis of queue broker {self.broker!r} is unreachable")

        async def tx(s: AsyncSession) -> int:
            return await outbox.store_jobs(s, jobs, self.broker, delay)

        added = await self.db.write(tx)
        self._keys_in_outbox.update(job.key for job in jobs if job.key is not None)
        return added

    async def _outbox_depth(self, queue: str) -> int:
        if self.db is None:
            return 0
        return await self.db.read(lambda s: outbox.pending_count(s, self.broker, queue))


def _redis_error() -> type[Exception]:
    """Evaluated only when an `except` clause is matched, so after Redis was used."""
    from redis.exceptions import RedisError

    return RedisError


def _due_ms(delay: float) -> int:
    return now_ms() + int(delay * 1000) if delay > 0 else 0
