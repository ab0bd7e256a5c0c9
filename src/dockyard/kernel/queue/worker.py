"""The worker loop: take jobs, run their handlers, settle each job only after its handler
returned (ack), failed (retry with backoff, or dead letter), or the worker stopped (hand back)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.kernel.context import bind_request_id
from dockyard.kernel.queue.jobs import Delivery, backoff_delay
from dockyard.kernel.queue.periodic import Scheduler
from dockyard.kernel.queue.registry import JobContext, Task, Tasks

if TYPE_CHECKING:
    from dockyard.kernel.queue.sources import JobSource

log = logging.getLogger("dockyard.worker")


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 16
    batch_size: int = 200
    block_ms: int = 500
    maintain_every: float = 1.0  # promote delayed jobs, reclaim stale ones
    keep_alive_every: float = 10.0  # must be well under the source's reclaim time
    shutdown_grace: float = 10.0


class Worker:
    def __init__(
        self, source: JobSource, tasks: Tasks, context: JobContext,
        options: WorkerOptions | None = None, scheduler: Scheduler | None = None,
    ) -> None:
        self.source = source
        self.tasks = tasks
        self.context = context
        self.options = options or WorkerOptions()
        self.scheduler = scheduler
        self.in_hand: set[Delivery] = set()
        self._unacked: list[Delivery] = []
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self.processed = 0
        self._started: dict[str, float] = {}  # when each coalescing task last started a run
        self._running: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then finish the jobs in hand within the grace period and
        hand back the rest."""
        loop = asyncio.create_task(self._loop(stop))
        renew = self._every(self.options.keep_alive_every, self._keep_alive)
        helpers = [asyncio.create_task(renew)]
        if self.scheduler is not None:
            helpers.append(asyncio.create_task(self._schedule(self.scheduler)))
        await stop.wait()
        self.source.interrupt()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(loop), self.options.shutdown_grace)
        for task in [loop, *helpers]:
            task.cancel()
        await asyncio.gather(loop, *helpers, return_exceptions=True)
        await self._hand_back()

    async def _loop(self, stop: asyncio.Event) -> None:
        """Take jobs while fewer than `concurrency` are in hand, each batch run on its own, so
        that a slow job never holds back the jobs fetched after it; on stop, let the batches
        in hand finish (the caller cancels them after the grace period)."""
        pause, last_maintenance = 0.05, 0.0
        clock = asyncio.get_running_loop().time
        batches: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            try:
                await self._flush_acks()
                if batches and len(self.in_hand) >= self.options.concurrency:
                    await asyncio.wait(batches, timeout=self.options.block_ms / 1000,
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                batch: list[Delivery] = []
                if clock() - last_maintenance >= self.options.maintain_every:
                    batch, last_maintenance = await self.source.maintain(), clock()
                if not batch:
                    batch = await self.source.fetch(self.options.batch_size, self.options.block_ms)
                if batch:
                    self._start(batch, batches)
                pause = 0.05
            except Exception as exc:  # the source is unreachable: wait, then try again
                log.warning("queue source failed: %s", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
        await asyncio.gather(*batches, return_exceptions=True)

    def _start(self, batch: list[Delivery], batches: set[asyncio.Task[None]]) -> None:
        self.in_hand.update(batch)
        run = asyncio.create_task(self.process(batch))
        batches.add(run)

        def done(finished: asyncio.Task[None]) -> None:
            batches.discard(finished)
            if not finished.cancelled() and (exc := finished.exception()):
                log.warning("queue source failed: %s", exc)

        run.add_done_callback(done)

    async def process(self, batch: Sequence[Delivery]) -> None:
        """Run a batch: batch handlers once per task, the others concurrently, then ack."""
        self.in_hand.update(batch)
        by_task: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_task.setdefault(delivery.job.task, []).append(delivery)
        runs = [self._run_task(name, group) for name, group in by_task.items()]
        failures = [r for r in await asyncio.gather(*runs, return_exceptions=True) if r]
        if failures:  # a job could not be settled: leave it to be reclaimed, stop renewing it
            self.in_hand.difference_update(batch)
            raise failures[0]
        await self._flush_acks()

    async def _run_task(self, name: str, group: list[Delivery]) -> None:
        task = self.tasks.get(name)
        if task is None:
            for delivery in group:
                await self._settle_failure(Task(name, max_attempts=1), delivery, "no such task")
        elif task.batch_handler is not None:
            await self._run_batch(task, group)
        else:
            results = await asyncio.gather(
                *(self._run_one(task, d) for d in group), return_exceptions=True
            )
            for failure in (r for r in results if r):
                raise failure

    async def _run_batch(self, task: Task, group: list[Delivery]) -> None:
        assert task.batch_handler is not None
        try:
            await task.batch_handler(self.context, [d.job for d in group])
        except Exception:
            for delivery in group:
                await self._settle_failure(task, delivery, traceback.format_exc())
            return
        self._finished(group)

    async def _run_one(self, task: Task, delivery: Delivery) -> None:
        async with self._slots:
            if task.coalesce:
                if self._covered(task.name, delivery.job.enqueued_at):
                    log.debug("job covered by another run", extra={"task": task.name})
                    self._finished([delivery])
                    return
                self._running.add(task.name)
                self._started[task.name] = time.time()
            try:
                await self._handle(task, delivery)
            finally:
                self._running.discard(task.name)

    def _covered(self, task: str, enqueued_at: float) -> bool:
        return task in self._running or enqueued_at < self._started.get(task, 0.0)

    async def _handle(self, task: Task, delivery: Delivery) -> None:
        assert task.handler is not None
        bind_request_id(delivery.job.request_id)
        context = JobContext(self.context.worker, self.context.resources, delivery.job)
        try:
            await task.handler(context, delivery.job.payload)
        except Exception:
            await self._settle_failure(task, delivery, traceback.format_exc())
            return
        log.debug("job done", extra={"task": task.name, "job_id": delivery.job.id})
        self._finished([delivery])

    def _finished(self, deliveries: Sequence[Delivery]) -> None:
        self._unacked += deliveries
        self.in_hand.difference_update(deliveries)

    async def _settle_failure(self, task: Task, delivery: Delivery, error: str) -> None:
        job = delivery.job
        self.in_hand.discard(delivery)
        if job.attempt >= task.max_attempts:
            log.error("job failed for good: %s", error.strip().splitlines()[-1],
                      extra={"task": task.name, "job_id": job.id, "attempt": job.attempt})
            await self.source.bury(delivery, error)
            return
        delay = backoff_delay(job.attempt, task.retry_base, task.retry_cap, jitter=0.1)
        log.warning("job failed, retrying in %.1f s", delay,
                    extra={"task": task.name, "job_id": job.id, "attempt": job.attempt})
        await self.source.retry(delivery, delay, error)

    async def _flush_acks(self) -> None:
        """Ack what finished; batches that finish meanwhile add to the next flush."""
        done, self._unacked = self._unacked, []
        if not done:
            return
        try:
            await self.source.ack(done)
        except BaseException:
            self._unacked = done + self._unacked
            raise
        self.processed += len(done)

    async def _keep_alive(self) -> None:
        if self.in_hand:
            await self.source.keep_alive(list(self.in_hand))

    async def _schedule(self, scheduler: Scheduler) -> None:
        """Sleep until the next schedule is due (re-checked at least every minute)."""
        while True:
            await asyncio.sleep(min(max(scheduler.next_due() - scheduler.clock(), 0.0), 60.0))
            try:
                await scheduler.tick()
            except Exception as exc:
                log.warning("worker housekeeping failed: %s", exc)
                await asyncio.sleep(1.0)

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception as exc:
                log.warning("worker housekeeping failed: %s", exc)

    async def _hand_back(self) -> None:
        """Settle what finished, hand back what did not, so nothing waits to be reclaimed."""
        with contextlib.suppress(Exception):
            await self._flush_acks()
        if self.in_hand:
            log.info("handing back %d unfinished jobs", len(self.in_hand))
            with contextlib.suppress(Exception):
                await self.source.release(list(self.in_hand))
            self.in_hand.clear()


if __name__ == "__main__":  # until `dockyard worker` is registered in the main CLI
    import sys

    from dockyard.cli.worker import app

    app(["worker", *sys.argv[1:]])
