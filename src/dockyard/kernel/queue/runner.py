"""Worker and relay as processes of their own: built from settings, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dockyard.kernel.db import Database
from dockyard.kernel.logging import configure_logging
from dockyard.kernel.queue.dbsource import OutboxSource
from dockyard.kernel.queue.jobs import DEFAULT_QUEUE
from dockyard.kernel.queue.manager import QueueManager
from dockyard.kernel.queue.outbox import DEFAULT_BROKER
from dockyard.kernel.queue.periodic import Scheduler
from dockyard.kernel.queue.registry import JobContext, Tasks
from dockyard.kernel.queue.wakeup import Wakeup, for_database
from dockyard.kernel.queue.worker import Worker, WorkerOptions
from dockyard.kernel.settings import Settings

if TYPE_CHECKING:
    from dockyard.kernel.queue.sources import JobSource

BUILTIN_TASKS = "dockyard.kernel.metrics.tasks:TASKS"
ALL_TASKS = (  # what `dockyard worker` runs unless told otherwise (cli/worker.py)
    BUILTIN_TASKS, "dockyard.core.logcollect:TASKS", "dockyard.core.reconcile:TASKS",
    "dockyard.core.backups:TASKS", "dockyard.core.backup_jobs:TASKS",
    "dockyard.core.certify:TASKS", "dockyard.core.provision_sweep:TASKS",
    "dockyard.core.app_metrics:TASKS", "dockyard.core.alerts:TASKS",
    "dockyard.core.retention:TASKS", "dockyard.core.image_prune:TASKS",
)
# The longest an outbox worker waits without a wake-up before it looks at the table anyway.
SAFETY_INTERVAL_MS = 30_000


@dataclass(frozen=True)
class WorkerConfig:
    redis_url: str | None
    broker: str = DEFAULT_BROKER
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    task_modules: tuple[str, ...] = (BUILTIN_TASKS,)
    reclaim_after: float = 30.0  # also the lease of an outbox row
    options: WorkerOptions = field(default_factory=WorkerOptions)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def load_tasks(specs: tuple[str, ...]) -> Tasks:
    """Registries named `package.module:ATTRIBUTE`, merged in order."""
    registries: list[Tasks] = []
    for spec in specs:
        module, _, attribute = spec.partition(":")
        found: Any = getattr(importlib.import_module(module), attribute or "TASKS")
        if not isinstance(found, Tasks):
            raise ValueError(f"{spec} is not a task registry (dockyard.kernel.queue.Tasks)")
        registries.append(found)
    return Tasks(*registries)


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _source(settings: Settings, config: WorkerConfig, manager: QueueManager, db: Database,
            name: str, wakeup: Wakeup) -> JobSource:
    if manager.redis is not None:
        from dockyard.kernel.queue.sources import StreamSource

        return StreamSource(manager.redis, config.queues, name, config.reclaim_after,
                            settings.dead_jobs_max_rows)
    return OutboxSource(db, config.broker, config.queues, name, config.reclaim_after, wakeup)


def build_worker(settings: Settings, config: WorkerConfig, db: Database, manager: QueueManager,
                 wakeup: Wakeup) -> Worker:
    """A worker on `manager`'s Redis, or on the outbox of `db` woken by `wakeup`."""
    name = consumer_name()
    tasks = load_tasks(config.task_modules)
    context = JobContext(name, {"settings": settings, "db": db, "queue": manager})
    scheduler = Scheduler(manager, tasks.periodic) if tasks.periodic else None
    options = config.options
    if manager.redis is None:  # woken by commits: the block is only a safety interval
        options = replace(options, block_ms=SAFETY_INTERVAL_MS)
    source = _source(settings, config, manager, db, name, wakeup)
    return Worker(source, tasks, context, options, scheduler)


async def serve_worker(settings: Settings, config: WorkerConfig) -> None:
    configure_logging(settings.log_level, settings.log_json)
    db = Database(settings)
    manager = QueueManager(config.redis_url, db=db, broker=config.broker)
    wakeup = for_database(db.url)
    try:
        if manager.redis is None:
            await wakeup.start()
        await build_worker(settings, config, db, manager, wakeup).run(stop_on_signals())
    finally:
        await wakeup.close()
        await manager.close()
        await db.dispose()


async def serve_relay(settings: Settings, redis_url: str, broker: str = DEFAULT_BROKER) -> None:
    configure_logging(settings.log_level, settings.log_json)
    db = Database(settings)
    manager = QueueManager(redis_url, db=db, broker=broker)
    try:
        from dockyard.kernel.queue.relay import Relay

        await Relay(manager).run(stop_on_signals())
    finally:
        await manager.close()
        await db.dispose()
