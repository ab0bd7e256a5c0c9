"""Hands request records to the queue in batches, off the request's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from dockyard.kernel.metrics.prometheus import HttpMetrics
from dockyard.kernel.queue.manager import QueueManager

STORE_TASK = "metrics.store_requests"
log = logging.getLogger("dockyard.metrics")


class MetricsSink:
    """Buffers records; one queue job carries a whole batch. When the queue cannot take a
    batch, the batch is dropped and counted: metrics never hold requests up."""

    def __init__(
        self, manager_factory: Callable[[], QueueManager | None], counters: HttpMetrics,
        batch_size: int = 100, max_buffer: int = 10_000, flush_every: float = 1.0,
    ) -> None:
        self._factory = manager_factory
        self._manager: QueueManager | None = None
        self.counters = counters
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.flush_every = flush_every
        self._buffer: list[dict[str, Any]] = []
        self._last_warning = 0.0

    @property
    def manager(self) -> QueueManager | None:
        if self._manager is None:
            self._manager = self._factory()
        return self._manager

    def submit(self, record: dict[str, Any]) -> bool:
        """Buffer one record; True when a batch is ready to flush."""
        if len(self._buffer) >= self.max_buffer:
            self.counters.dropped.inc()
            return False
        self._buffer.append(record)
        return len(self._buffer) >= self.batch_size

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        manager = self.manager
        if not batch or manager is None:
            return
        try:
            await manager.enqueue(STORE_TASK, {"records": batch})
        except Exception as exc:  # never fail a request for its metrics
            self.counters.dropped.inc(len(batch))
            self._warn(exc, len(batch))

    async def flush_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.flush_every)
            await self.flush()

    async def close(self) -> None:
        await self.flush()
        if self._manager is not None:
            await self._manager.close()
            self._manager = None

    def _warn(self, exc: Exception, count: int) -> None:
        """At most one warning a minute, so a broken queue cannot flood the logs."""
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning("dropped %d request records: %s", count, exc)
