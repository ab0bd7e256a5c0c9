"""Outbox workers wait on a wake-up instead of polling: a commit in another process wakes them,
and delayed jobs, periodic schedules and a stop still end the wait. Every worker here looks at
the table on its own only every 30 s (its safety interval), so anything that happens well
before that was woken."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dockyard.core.platform import Platform
from dockyard.kernel.queue import JobContext, QueueManager, Tasks
from dockyard.kernel.queue.dbsource import OutboxSource
from dockyard.kernel.queue.embedded import embedded_worker
from dockyard.kernel.queue.periodic import Periodic, Scheduler
from dockyard.kernel.queue.runner import SAFETY_INTERVAL_MS, WorkerConfig
from dockyard.kernel.queue.wakeup import for_database
from dockyard.kernel.queue.worker import Worker, WorkerOptions
from dockyard.kernel.settings import Settings
from tests.live import clean_environ
from tests.queue.helpers import eventually, running_worker

WOKEN_WITHIN = 10.0  # well under the safety interval
EMBEDDED_STARTS: list[float] = []
EMBEDDED = Tasks()


@EMBEDDED.task("note")
async def embedded_note(ctx: JobContext, payload: dict[str, Any]) -> None:
    EMBEDDED_STARTS.append(time.time() - payload["at"])
ENQUEUE = """
import asyncio, sys, time
from dockyard.kernel.db import Database
from dockyard.kernel.queue import QueueManager
from dockyard.kernel.settings import Settings

async def main():
    db = Database(Settings())
    await QueueManager(db=db).enqueue("note", {"at": time.time()})
    await db.dispose()

asyncio.run(main())
"""


@asynccontextmanager
async def idle_worker(platform: Platform, tasks: Tasks, schedules: list[Periodic] | None = None
                      ) -> AsyncIterator[Worker]:
    """A worker as `dockyard worker` runs it without Redis: woken by commits."""
    wakeup = for_database(platform.db.url)
    await wakeup.start()
    source = OutboxSource(platform.db, "default", ["default"], "woken", wakeup=wakeup)
    options = WorkerOptions(block_ms=SAFETY_INTERVAL_MS, shutdown_grace=2)
    scheduler = Scheduler(QueueManager(db=platform.db), schedules) if schedules else None
    try:
        async with running_worker(source, tasks, options, scheduler=scheduler,
                                  stops_within=WOKEN_WITHIN) as worker:  # a stop ends the wait
            yield worker
    finally:
        await wakeup.close()


def enqueue_elsewhere(settings: Settings) -> None:
    env = {**clean_environ(), "DOCKYARD_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    done = subprocess.run([sys.executable, "-c", ENQUEUE], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def noting(started: list[float]) -> Tasks:
    tasks = Tasks()

    @tasks.task("note")
    async def note(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.append(time.time() - payload["at"])

    return tasks


async def test_a_job_enqueued_by_another_process_wakes_the_worker(
    platform: Platform, settings: Settings
) -> None:
    started: list[float] = []
    async with idle_worker(platform, noting(started)) as worker:
        await eventually(lambda: _idle(worker), what="the worker waiting")
        for _ in range(3):
            await asyncio.to_thread(enqueue_elsewhere, settings)
        await eventually(lambda: _length(started, 3), within=WOKEN_WITHIN,
                         what="three jobs started before the safety interval")


async def _idle(worker: Worker) -> bool:
    await asyncio.sleep(0.2)
    return not worker.in_hand


async def _length(items: list[Any], expected: int) -> bool:
    return len(items) >= expected


async def test_a_retry_runs_when_its_backoff_ends_without_any_wake_up(platform: Platform) -> None:
    tasks, attempts = Tasks(), []

    @tasks.task("flaky", retry_base=1.0)
    async def flaky(ctx: JobContext, payload: dict[str, Any]) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    async with idle_worker(platform, tasks):
        await QueueManager(db=platform.db).enqueue("flaky", {})
        await eventually(lambda: _length(attempts, 2), within=WOKEN_WITHIN,
                         what="the retry after its backoff")
    assert attempts[1] - attempts[0] >= 0.9  # not before it was due


async def test_periodic_schedules_fire_while_the_worker_is_idle(platform: Platform) -> None:
    tasks, runs = Tasks(), []

    @tasks.task("tick")
    async def tick(ctx: JobContext, payload: dict[str, Any]) -> None:
        runs.append(time.time())

    every_second = [Periodic("ticker", "* * * * * */1", "tick")]
    async with idle_worker(platform, tasks, every_second):
        await eventually(lambda: _length(runs, 3), within=WOKEN_WITHIN,
                         what="three ticks of a schedule due every second")


async def test_the_worker_embedded_in_another_process_is_woken_and_stops(
    platform: Platform, settings: Settings
) -> None:
    EMBEDDED_STARTS.clear()
    config = WorkerConfig(redis_url=None, task_modules=("tests.queue.test_wakeup:EMBEDDED",))
    async with embedded_worker(settings, platform.db, config) as worker:
        await eventually(lambda: _idle(worker), what="the worker waiting")
        await asyncio.to_thread(enqueue_elsewhere, settings)
        await eventually(lambda: _length(EMBEDDED_STARTS, 1), within=WOKEN_WITHIN,
                         what="the job started before the safety interval")


async def test_jobs_handed_back_at_shutdown_wake_another_worker(platform: Platform) -> None:
    tasks, calls = Tasks(), []

    @tasks.task("hold")
    async def hold(ctx: JobContext, payload: dict[str, Any]) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:  # the first worker never finishes it: it hands it back
            await asyncio.Event().wait()

    first = idle_worker(platform, tasks)
    await first.__aenter__()
    await QueueManager(db=platform.db).enqueue("hold", {})
    await eventually(lambda: _length(calls, 1), what="the first worker holding the job")
    async with idle_worker(platform, tasks):
        await first.__aexit__(None, None, None)
        await eventually(lambda: _length(calls, 2), within=WOKEN_WITHIN,
                         what="the second worker taking the handed-back job")
