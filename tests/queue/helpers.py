"""Helpers shared by the queue tests: waiting on a condition, running a worker in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from dockyard.kernel.queue.periodic import Scheduler
from dockyard.kernel.queue.registry import JobContext, Tasks
from dockyard.kernel.queue.sources import JobSource
from dockyard.kernel.queue.worker import Worker, WorkerOptions


async def eventually(
    condition: Callable[[], Awaitable[bool]], within: float = 20.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within} s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_worker(
    source: JobSource, tasks: Tasks, options: WorkerOptions | None = None,
    resources: dict[str, object] | None = None, scheduler: Scheduler | None = None,
    stops_within: float | None = None,
) -> AsyncIterator[Worker]:
    """A worker running `tasks` from `source` until the block ends; then stopped (within
    `stops_within` seconds when given)."""
    options = options or WorkerOptions(block_ms=50, maintain_every=0.1, shutdown_grace=2)
    worker = Worker(source, tasks, JobContext("test-worker", dict(resources or {})), options,
                    scheduler)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(run, stops_within)
