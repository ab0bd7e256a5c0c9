"""The outbox table as the queue, for the embedded default without Redis: a worker leases
rows for `lease` seconds; a row whose worker died becomes visible again when its lease ends.
Between claims a worker waits on a wake-up (wakeup.py) until a job is committed or comes due."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.db import Database
from dockyard.kernel.queue.jobs import Delivery
from dockyard.kernel.queue.outbox import PENDING, to_job
from dockyard.kernel.queue.wakeup import Polling, Wakeup, announce
from dockyard.models.base import utcnow
from dockyard.models.queue import OutboxEvent, OutboxStatus

IDLE_POLL_SECONDS = 0.05  # without a wake-up that listens


class OutboxSource:
    def __init__(
        self, db: Database, broker: str, queues: Sequence[str], consumer: str, lease: float = 30.0,
        wakeup: Wakeup | None = None,
    ) -> None:
        self.db = db
        self.wakeup = wakeup or Polling(IDLE_POLL_SECONDS)
        self.broker = broker
        self.queues = list(queues)
        self.consumer = consumer
        self.lease = timedelta(seconds=lease)

    def _pending(self) -> Any:
        return (OutboxEvent.broker == self.broker, OutboxEvent.queue.in_(self.queues),
                OutboxEvent.status == PENDING)

    def _claimable(self, limit: int) -> Any:
        now = utcnow()
        return (
            select(OutboxEvent)
            .where(
                *self._pending(), OutboxEvent.available_at <= now,
                or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now),
            )
            .order_by(OutboxEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    async def _claim(self, limit: int) -> list[Delivery]:
        async def tx(s: AsyncSession) -> list[Delivery]:
            rows = list((await s.scalars(self._claimable(limit))).all())
            for row in rows:
                row.locked_by, row.locked_until = self.consumer, utcnow() + self.lease
            return [Delivery(to_job(row), str(row.id)) for row in rows]

        return await self.db.write(tx)

    async def _next_due(self) -> float:
        """Seconds until a delayed job comes due or a lease runs out (inf: none)."""
        now = utcnow()
        query = select(
            select(func.min(OutboxEvent.available_at))
            .where(*self._pending(), OutboxEvent.available_at > now).scalar_subquery(),
            select(func.min(OutboxEvent.locked_until))
            .where(*self._pending(), OutboxEvent.locked_until > now).scalar_subquery(),
        )

        async def tx(s: AsyncSession) -> Sequence[datetime | None]:
            return tuple((await s.execute(query)).one())

        due = [(m - now).total_seconds() for m in await self.db.read(tx) if m is not None]
        return min(due, default=float("inf"))

    async def fetch(self, count: int, block_ms: int) -> list[Delivery]:
        """Claim jobs; when there are none, wait for a wake-up, the next due job, or
        `block_ms`, whichever comes first."""
        clock = asyncio.get_running_loop().time
        deadline = clock() + block_ms / 1000
        while True:
            found = await self._claim(count)
            if found or clock() >= deadline:
                return found
            await self.wakeup.wait(min(deadline - clock(), await self._next_due()))

    def interrupt(self) -> None:
        """End a wait at once (the worker is stopping)."""
        self.wakeup.set()

    async def _update(self, deliveries: Sequence[Delivery], wake: bool = False, **values: Any
                      ) -> None:
        ids = [int(d.handle) for d in deliveries]
        query = update(OutboxEvent).where(
            OutboxEvent.id.in_(ids), OutboxEvent.locked_by == self.consumer
        )

        async def tx(s: AsyncSession) -> None:
            await s.execute(query.values(**values))
            if wake:
                await announce(s)

        await self.db.write(tx)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        await self._update(deliveries, status=OutboxStatus.DONE.value, finished_at=utcnow(),
                           locked_by=None, locked_until=None)

    async def retry(self, delivery: Delivery, delay: float, error: str) -> None:
        due = utcnow() + timedelta(seconds=delay)
        await self._update([delivery], attempt=delivery.job.attempt + 1, available_at=due,
                           last_error=error[:2000], locked_by=None, locked_until=None)

    async def bury(self, delivery: Delivery, error: str) -> None:
        await self._update([delivery], status=OutboxStatus.DEAD.value, finished_at=utcnow(),
                           last_error=error[:2000], locked_by=None, locked_until=None)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand jobs back (shutdown), waking the other workers to take them."""
        await self._update(deliveries, wake=True, locked_by=None, locked_until=None)

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        await self._update(deliveries, locked_until=utcnow() + self.lease)

    async def maintain(self) -> list[Delivery]:
        """Expired leases need no sweep: `fetch` sees those rows again by itself."""
        return []
