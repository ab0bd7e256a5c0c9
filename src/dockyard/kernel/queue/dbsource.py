"""The outbox table as the queue, for the embedded default without Redis: a worker leases
rows for `lease` seconds; a row whose worker died becomes visible again when its lease ends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.db import Database
from dockyard.kernel.queue.jobs import Delivery
from dockyard.kernel.queue.outbox import PENDING, to_job
from dockyard.models.base import utcnow
from dockyard.models.queue import OutboxEvent, OutboxStatus

IDLE_POLL_SECONDS = 0.05


class OutboxSource:
    def __init__(
        self, db: Database, broker: str, queues: Sequence[str], consumer: str, lease: float = 30.0
    ) -> None:
        self.db = db
        self.broker = broker
        self.queues = list(queues)
        self.consumer = consumer
        self.lease = timedelta(seconds=lease)

    def _claimable(self, limit: int) -> Any:
        now = utcnow()
        return (
            select(OutboxEvent)
            .where(
                OutboxEvent.broker == self.broker, OutboxEvent.queue.in_(self.queues),
                OutboxEvent.status == PENDING, OutboxEvent.available_at <= now,
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

    async def fetch(self, count: int, block_ms: int) -> list[Delivery]:
        """Poll until jobs come or `block_ms` passes."""
        deadline = asyncio.get_running_loop().time() + block_ms / 1000
        while True:
            found = await self._claim(count)
            if found or asyncio.get_running_loop().time() >= deadline:
                return found
            await asyncio.sleep(IDLE_POLL_SECONDS)

    async def _update(self, deliveries: Sequence[Delivery], **values: Any) -> None:
        ids = [int(d.handle) for d in deliveries]
        query = update(OutboxEvent).where(
            OutboxEvent.id.in_(ids), OutboxEvent.locked_by == self.consumer
        )

        async def tx(s: AsyncSession) -> None:
            await s.execute(query.values(**values))

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
        await self._update(deliveries, locked_by=None, locked_until=None)

    async def keep_alive(self, deliveries: Sequence[Delivery]) -> None:
        await self._update(deliveries, locked_until=utcnow() + self.lease)

    async def maintain(self) -> list[Delivery]:
        """Expired leases need no sweep: `fetch` sees those rows again by itself."""
        return []
