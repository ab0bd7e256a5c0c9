"""Named tasks a worker can run, and what a handler receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.periodic import Periodic

Handler = Callable[["JobContext", dict[str, Any]], Awaitable[None]]
BatchHandler = Callable[["JobContext", Sequence[Job]], Awaitable[None]]


@dataclass
class JobContext:
    """What a handler may use: the worker's name and shared resources (database, settings)."""

    worker: str
    resources: dict[str, Any] = field(default_factory=dict)
    job: Job | None = None  # None for batch handlers, which get their jobs as the argument


@dataclass(frozen=True)
class Task:
    name: str
    handler: Handler | None = None
    batch_handler: BatchHandler | None = None
    max_attempts: int = 5
    retry_base: float = 1.0  # seconds before the first retry; doubled each attempt
    retry_cap: float = 300.0
    # A pass over the world (collect, reconcile, evaluate): a job of the task that the worker
    # would start while another runs, or that was enqueued before the last one started, ends
    # at once: that run does its work (a backlog of ticks is not worked off one by one).
    coalesce: bool = False


class Tasks:
    """A registry: `@tasks.task("name")` for one job per call, `@tasks.batch("name")` for
    handlers that store many jobs at once (one database round trip for a whole batch)."""

    def __init__(self, *registries: Tasks) -> None:
        self._tasks: dict[str, Task] = {}
        self.periodic: list[Periodic] = []
        for registry in registries:
            self._tasks.update(registry._tasks)
            self.periodic += registry.periodic

    def task(self, name: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._tasks[name] = Task(name, handler=handler, **options)
            return handler

        return register

    def batch(self, name: str, **options: Any) -> Callable[[BatchHandler], BatchHandler]:
        def register(handler: BatchHandler) -> BatchHandler:
            self._tasks[name] = Task(name, batch_handler=handler, **options)
            return handler

        return register

    def every(self, name: str, cron: str, task: str, payload: dict[str, Any] | None = None) -> None:
        """Enqueue `task` on the cron schedule `cron` (see Periodic)."""
        self.periodic.append(Periodic(name, cron, task, payload or {}))

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())
