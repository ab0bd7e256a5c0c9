"""The relay: moves outbox rows to Redis in insertion order (so in order per key) and marks
them delivered in the same transaction that read them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.queue import outbox
from dockyard.kernel.queue.manager import QueueManager

log = logging.getLogger("dockyard.relay")


class Relay:
    def __init__(
        self, manager: QueueManager, batch_size: int = 500, idle_poll: float = 0.1,
        retention: timedelta = timedelta(days=1), prune_every: float = 300.0,
    ) -> None:
        if manager.streams is None or manager.db is None:
            raise ValueError("the relay needs a queue with both Redis and a database")
        self.manager = manager
        self.db = manager.db
        self.streams = manager.streams
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.retention = retention
        self.prune_every = prune_every
        self.relayed = 0

    async def relay_once(self) -> int:
        """Move one batch; returns how many rows it moved."""
        broker = self.manager.broker
        if not await self.db.read(lambda s: outbox.any_pending(s, broker)):
            return 0

        async def tx(s: AsyncSession) -> int:
            rows = await outbox.oldest_pending(s, broker, self.batch_size)
            due = [int(row.available_at.timestamp() * 1000) for row in rows]
            jobs = [outbox.to_job(row) for row in rows]
            await self.streams.enqueue_many(list(zip(jobs, due, strict=True)))
            await outbox.mark_delivered(s, [row.id for row in rows])
            return len(rows)

        moved = await self.db.write(tx)
        self.relayed += moved
        return moved

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; the batch in hand is finished first."""
        pause, last_prune = 0.05, asyncio.get_running_loop().time()
        while not stop.is_set():
            moved = await self._step()
            if moved is None:
                await _wait(stop, pause)
                pause = min(pause * 2, 1.0)
                continue
            pause = 0.05
            if not moved:
                await _wait(stop, self.idle_poll)
            if asyncio.get_running_loop().time() - last_prune >= self.prune_every:
                await self._prune()
                last_prune = asyncio.get_running_loop().time()

    async def _step(self) -> int | None:
        """One batch through the breaker; None when Redis is unreachable."""
        breaker = self.manager.breaker
        if not breaker.allow():
            return None
        try:
            moved = await self.relay_once()
        except RedisError as exc:
            breaker.record_failure()
            log.warning("relay cannot reach redis: %s", exc)
            return None
        breaker.record_success()
        return moved

    async def _prune(self) -> None:
        broker, older = self.manager.broker, self.retention

        async def tx(s: AsyncSession) -> int:
            return await outbox.prune_finished(s, broker, older)

        await self.db.write(tx)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


if __name__ == "__main__":  # until `dockyard relay` is registered in the main CLI
    import sys

    from dockyard.cli.worker import app

    app(["relay", *sys.argv[1:]])
