"""A deployment's event log: appended by the engine, replayed and followed by SSE readers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.audit import UNAUDITED
from dockyard.kernel.db import Database
from dockyard.models.tables import DeploymentEvent

DONE = "done"
FOLLOW_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Event:
    deployment_id: str
    seq: int
    kind: str
    message: str
    time: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.data, "seq": self.seq, "kind": self.kind, "message": self.message,
                "time": self.time, "deployment_id": self.deployment_id}

    def sse(self) -> bytes:
        payload = json.dumps(self.as_json(), separators=(",", ":"))
        return f"id: {self.seq}\nevent: {self.kind}\ndata: {payload}\n\n".encode()


def _event(row: DeploymentEvent) -> Event:
    return Event(row.deployment_id, row.seq, row.kind, row.message,
                 row.created_at.isoformat(), dict(row.data))


class EventLog:
    """Appends are serialised per process; readers of this process are woken at once, readers
    elsewhere notice within a second."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._appended = 0

    async def append(self, deployment_id: str, kind: str, message: str, *,
                     alongside: Callable[[AsyncSession], Awaitable[None]] | None = None,
                     **data: Any) -> Event:
        """Append one event; `alongside` changes other rows in the same transaction (the
        engine's own writes: they leave no history rows, see kernel/audit.py)."""

        async def tx(s: AsyncSession) -> Event:
            if alongside is not None:
                await alongside(s)
            query = select(func.max(DeploymentEvent.seq)).where(
                DeploymentEvent.deployment_id == deployment_id)
            row = DeploymentEvent(deployment_id=deployment_id, seq=(await s.scalar(query) or 0) + 1,
                                  kind=kind, message=message, data=data)
            s.add(row)
            await s.flush()
            return _event(row)

        async with self._lock:
            event = await self.db.write(tx, info=UNAUDITED)
        async with self._changed:
            self._appended += 1
            self._changed.notify_all()
        return event

    async def since(self, deployment_id: str, after: int, limit: int = 500) -> list[Event]:
        async def tx(s: AsyncSession) -> list[Event]:
            query = (select(DeploymentEvent)
                     .where(DeploymentEvent.deployment_id == deployment_id,
                            DeploymentEvent.seq > after)
                     .order_by(DeploymentEvent.seq).limit(limit))
            return [_event(row) for row in await s.scalars(query)]

        return await self.db.read(tx)

    async def follow(self, deployment_id: str, after: int = 0, keepalive: float = 15.0
                     ) -> AsyncIterator[Event | None]:
        """Every event after `after`, then new ones as they come, until `done`. `None` means
        nothing happened for `keepalive` seconds (a reader sends a comment to keep the line)."""
        quiet = 0.0
        while True:
            seen = self._appended
            events = await self.since(deployment_id, after)
            for event in events:
                yield event
                if event.kind == DONE:
                    return
            after = events[-1].seq if events else after
            quiet = 0.0 if events else quiet + await self._wait(seen)
            if quiet >= keepalive:
                quiet = 0.0
                yield None

    async def _wait(self, seen: int) -> float:
        """Until this process appends anything after `seen`, or a second (other writers)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._appended != seen), FOLLOW_POLL_SECONDS)
        return FOLLOW_POLL_SECONDS
