"""Periodic jobs on cron schedules. Every worker may run the scheduler: the idempotency key
names the schedule and its tick, so each tick is enqueued once however many workers run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from dockyard.kernel.queue.jobs import DEFAULT_QUEUE
from dockyard.kernel.queue.manager import QueueManager


@dataclass(frozen=True)
class Periodic:
    """`cron` has five fields (minute hour day month weekday) or six (seconds last)."""

    name: str
    cron: str
    task: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.cron):
            raise ValueError(f"periodic job {self.name!r}: {self.cron!r} is not a cron schedule")

    def next_after(self, moment: float) -> float:
        start = datetime.fromtimestamp(moment, UTC)
        return float(croniter(self.cron, start).get_next(float))

    def idempotency_key(self, tick: float) -> str:
        return f"periodic:{self.name}:{int(tick)}"


class Scheduler:
    def __init__(
        self, manager: QueueManager, schedules: Sequence[Periodic],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.clock = clock
        now = clock()
        self._next = {p.name: (p, p.next_after(now)) for p in schedules}

    def next_due(self) -> float:
        """When the earliest schedule is due (clock time; inf without schedules)."""
        return min((at for _periodic, at in self._next.values()), default=float("inf"))

    async def tick(self) -> int:
        """Enqueue every schedule whose time has come; returns how many were due."""
        now, due = self.clock(), 0
        for name, (periodic, at) in list(self._next.items()):
            if at > now:
                continue
            await self.manager.enqueue(
                periodic.task, periodic.payload, queue=periodic.queue,
                idempotency_key=periodic.idempotency_key(at),
            )
            self._next[name] = (periodic, periodic.next_after(max(at, now)))
            due += 1
        return due
