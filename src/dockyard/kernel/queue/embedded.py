"""The worker inside another process's event loop: with DOCKYARD_WORKER=embedded, the API
process that runs the background loops (api/app.py) runs the jobs too, and one interpreter's
modules serve both. Its jobs are leased as the worker process's are: if the process dies, they
are taken again once their lease ends. The job handlers keep blocking calls off the event
loop (providers' SDKs and SMTP in threads), so a job stalls the API's requests no more than
the API's own routes calling the same code do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dockyard.kernel.db import Database
from dockyard.kernel.queue.manager import QueueManager
from dockyard.kernel.queue.runner import ALL_TASKS, WorkerConfig, build_worker
from dockyard.kernel.queue.wakeup import for_database
from dockyard.kernel.queue.worker import Worker
from dockyard.kernel.settings import Settings


@asynccontextmanager
async def embedded_worker(settings: Settings, db: Database,
                          config: WorkerConfig | None = None) -> AsyncIterator[Worker]:
    """Run a worker on `db` (and Redis when configured) until the block ends; then it
    finishes or hands back the jobs in hand, as `dockyard worker` does on SIGTERM."""
    config = config or WorkerConfig(redis_url=settings.redis_url, task_modules=ALL_TASKS)
    manager = QueueManager(config.redis_url, db=db, broker=config.broker)
    wakeup = for_database(db.url)
    stop = asyncio.Event()
    try:
        if manager.redis is None:
            await wakeup.start()
        worker = build_worker(settings, config, db, manager, wakeup)
        running = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await running
    finally:
        await wakeup.close()
        await manager.close()
