"""`dockyard worker` and `dockyard relay`: the queue's processes, run on this machine."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from dockyard.kernel.settings import Settings

app = typer.Typer(help="Run the job queue's processes.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

# Task registries, named for tests that run some of them; the worker runs runner.ALL_TASKS.
LOG_TASKS = "dockyard.core.logcollect:TASKS"
RECONCILE_TASKS = "dockyard.core.reconcile:TASKS"
BACKUP_SWEEP_TASKS = "dockyard.core.backups:TASKS"
BACKUP_TASKS = "dockyard.core.backup_jobs:TASKS"
DOMAIN_TASKS = "dockyard.core.certify:TASKS"
PROVISION_TASKS = "dockyard.core.provision_sweep:TASKS"
METRICS_TASKS = "dockyard.core.app_metrics:TASKS"
ALERT_TASKS = "dockyard.core.alerts:TASKS"
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis to use (default: REDIS_URL; none: the database)."),
]
Broker = Annotated[str, typer.Option(help="Outbox name of this Redis, one per Redis URL.")]


@app.command()
def worker(
    redis_url: RedisUrl = None,
    broker: Broker = "default",
    queue: Annotated[list[str] | None, typer.Option(help="Queue to take jobs from.")] = None,
    tasks: Annotated[
        list[str] | None, typer.Option(help="Task registry as module:ATTRIBUTE (repeatable).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once.")] = 16,
    reclaim_after: Annotated[
        float, typer.Option(min=0.5, help="Seconds before a silent worker's jobs are taken over.")
    ] = 30.0,
    shutdown_grace: Annotated[
        float, typer.Option(min=0, help="Seconds to finish jobs in hand after SIGTERM.")
    ] = 10.0,
) -> None:
    """Process jobs until SIGTERM; then finish or hand back the jobs in hand."""
    from dockyard.kernel.queue.runner import ALL_TASKS, WorkerConfig, serve_worker
    from dockyard.kernel.queue.worker import WorkerOptions

    settings = Settings()
    config = WorkerConfig(
        redis_url=redis_url or settings.redis_url, broker=broker,
        queues=tuple(queue or ["default"]),
        task_modules=tuple(tasks or ALL_TASKS),
        reclaim_after=reclaim_after,
        options=WorkerOptions(concurrency=concurrency, keep_alive_every=reclaim_after / 3,
                              shutdown_grace=shutdown_grace),
    )
    asyncio.run(serve_worker(settings, config))


@app.command()
def relay(redis_url: RedisUrl = None, broker: Broker = "default") -> None:
    """Move outbox events to Redis, in order, until SIGTERM."""
    from dockyard.kernel.queue.runner import serve_relay

    settings = Settings()
    url = redis_url or settings.redis_url
    if not url:
        raise typer.BadParameter("no Redis configured: without one, workers read the outbox")
    asyncio.run(serve_relay(settings, url, broker))
