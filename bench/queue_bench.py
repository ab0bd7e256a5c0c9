"""Queue figures side by side, on one Redis in one run: Dockyard's queue, SAQ, arq and RQ.

For each: enqueue rate (N jobs, no worker running), processing rate (a worker drains them,
first to last completion), end-to-end latency p50/p99 (jobs enqueued one at a time at a
steady pace while a worker runs). Every worker runs a no-op job at concurrency 10.
RQ is synchronous: its worker runs as `rq worker` (SimpleWorker, no fork) in a subprocess.

    .venv/bin/python bench/queue_bench.py [--jobs 5000] [--paced 300]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as sync_redis

from dockyard.kernel.queue import JobContext, QueueManager, Tasks
from dockyard.kernel.queue.jobs import Job
from dockyard.kernel.queue.sources import StreamSource
from dockyard.kernel.queue.worker import Worker, WorkerOptions

DONE_KEY = "bench:done"  # RQ's subprocess reports (finished at, latency) here


@dataclass
class Figures:
    name: str
    enqueue_per_s: float
    process_per_s: float
    p50_ms: float
    p99_ms: float


class Recorder:
    def __init__(self) -> None:
        self.finished: list[float] = []
        self.latencies: list[float] = []

    def note(self, enqueued_at: float) -> None:
        now = time.time()
        self.finished.append(now)
        self.latencies.append((now - enqueued_at) * 1000)

    def reset(self) -> None:
        self.finished.clear()
        self.latencies.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], int, Path]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing: apt-get install -y redis-server")
    port, directory = free_port(), Path(tempfile.mkdtemp(prefix="dy-bench-"))
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", str(directory)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    client = sync_redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return process, port, directory
        except sync_redis.ConnectionError:
            time.sleep(0.02)
    sys.exit("redis-server did not start")


async def wait_for(condition: Callable[[], bool], limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark did not finish in time")
        await asyncio.sleep(0.005)


async def measure(
    name: str, recorder: Recorder, jobs: int, paced: int,
    enqueue: Callable[[float], Awaitable[Any]],
    start_worker: Callable[[], Awaitable[Callable[[], Awaitable[None]]]],
    done: Callable[[], int],
) -> Figures:
    started = time.perf_counter()
    for _ in range(jobs):
        await enqueue(0.0)
    enqueue_rate = jobs / (time.perf_counter() - started)
    stop = await start_worker()
    await wait_for(lambda: done() >= jobs)
    finished = sorted(recorder.finished)
    process_rate = jobs / max(finished[-1] - finished[0], 1e-9)
    recorder.reset()
    for _ in range(paced):
        await enqueue(time.time())
        await asyncio.sleep(0.002)
    await wait_for(lambda: done() >= paced)
    await stop()
    quantiles = statistics.quantiles(recorder.latencies, n=100)
    return Figures(name, enqueue_rate, process_rate, quantiles[49], quantiles[98])


async def bench_dockyard(url: str, jobs: int, paced: int) -> Figures:
    recorder, tasks = Recorder(), Tasks()

    @tasks.task("noop")
    async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
        recorder.note(payload["ts"])

    manager = QueueManager(url)
    assert manager.redis is not None

    async def start() -> Callable[[], Awaitable[None]]:
        source = StreamSource(manager.redis, ["default"], "bench")  # type: ignore[arg-type]
        options = WorkerOptions(concurrency=10, batch_size=100, block_ms=100)
        worker, stop = Worker(source, tasks, JobContext("bench"), options), asyncio.Event()
        run = asyncio.create_task(worker.run(stop))

        async def halt() -> None:
            stop.set()
            await run
            await manager.close()

        return halt

    return await measure("dockyard", recorder, jobs, paced,
                         lambda ts: manager.enqueue("noop", {"ts": ts}), start,
                         lambda: len(recorder.finished))


async def bench_dockyard_batched(url: str, jobs: int) -> float:
    """Enqueue rate of enqueue_many (the relay's and the metrics sink's path), 500 a call."""
    manager = QueueManager(url)
    started = time.perf_counter()
    for _ in range(jobs // 500):
        await manager.enqueue_many([Job("noop", {"ts": 0.0}, queue="batched") for _ in range(500)])
    rate = jobs / (time.perf_counter() - started)
    await manager.close()
    return rate


async def bench_saq(url: str, jobs: int, paced: int) -> Figures:
    from saq import Queue
    from saq import Worker as SaqWorker

    recorder, queue = Recorder(), Queue.from_url(url, name="saq-bench")

    async def noop(ctx: Any, *, ts: float) -> None:
        recorder.note(ts)

    await queue.connect()

    async def start() -> Callable[[], Awaitable[None]]:
        worker = SaqWorker(queue, functions=[("noop", noop)], concurrency=10)
        run = asyncio.create_task(worker.start())

        async def halt() -> None:
            await worker.stop()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await queue.disconnect()

        return halt

    return await measure("saq", recorder, jobs, paced,
                         lambda ts: queue.enqueue("noop", ts=ts), start,
                         lambda: len(recorder.finished))


async def bench_arq(port: int, jobs: int, paced: int) -> Figures:
    from arq import create_pool, func
    from arq.connections import RedisSettings
    from arq.worker import Worker as ArqWorker

    recorder, settings = Recorder(), RedisSettings(host="127.0.0.1", port=port)
    pool = await create_pool(settings)

    async def noop(ctx: Any, ts: float) -> None:
        recorder.note(ts)

    async def start() -> Callable[[], Awaitable[None]]:
        worker = ArqWorker(functions=[func(noop, name="noop")], redis_settings=settings,
                           max_jobs=10, poll_delay=0.01, handle_signals=False, keep_result=0,
                           log_results=False)
        run = asyncio.create_task(worker.async_run())

        async def halt() -> None:
            await worker.close()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await pool.aclose()

        return halt

    return await measure("arq", recorder, jobs, paced,
                         lambda ts: pool.enqueue_job("noop", ts), start,
                         lambda: len(recorder.finished))


def rq_noop(ts: float) -> None:
    """Runs inside the `rq worker` subprocess; reports back through Redis."""
    now = time.time()
    client = sync_redis.Redis(port=int(os.environ["BENCH_REDIS_PORT"]))
    client.rpush(DONE_KEY, f"{now} {(now - ts) * 1000}")


async def bench_rq(port: int, jobs: int, paced: int) -> Figures:
    from rq import Queue as RqQueue

    connection = sync_redis.Redis(port=port)
    queue, recorder = RqQueue("rq-bench", connection=connection), Recorder()
    connection.delete(DONE_KEY)

    async def enqueue(ts: float) -> None:
        queue.enqueue("queue_bench.rq_noop", ts, result_ttl=0)

    def done() -> int:
        reports = connection.lrange(DONE_KEY, len(recorder.finished), -1)
        for report in reports:
            finished, latency = map(float, report.split())
            recorder.finished.append(finished)
            recorder.latencies.append(latency)
        return len(recorder.finished)

    async def start() -> Callable[[], Awaitable[None]]:
        env = {**os.environ, "BENCH_REDIS_PORT": str(port),
               "PYTHONPATH": str(Path(__file__).parent)}
        argv = [sys.executable, "-m", "rq.cli", "worker", "rq-bench", "--url",
                f"redis://127.0.0.1:{port}", "--worker-class", "rq.worker.SimpleWorker", "-q"]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220

        async def halt() -> None:
            process.terminate()
            process.wait(timeout=30)

        return halt

    real_reset = recorder.reset

    def reset() -> None:
        real_reset()
        connection.delete(DONE_KEY)

    recorder.reset = reset  # type: ignore[method-assign]
    return await measure("rq", recorder, jobs, paced, enqueue, start, done)


def table(rows: Sequence[Figures], batched: float) -> str:
    lines = [f"{'queue':10} {'enqueue/s':>10} {'process/s':>10} {'p50 ms':>8} {'p99 ms':>8}"]
    for r in rows:
        lines.append(f"{r.name:10} {r.enqueue_per_s:10.0f} {r.process_per_s:10.0f} "
                     f"{r.p50_ms:8.2f} {r.p99_ms:8.2f}")
    lines.append(f"dockyard enqueue_many (500 per call): {batched:.0f} jobs/s")
    return "\n".join(lines)


async def main(jobs: int, paced: int) -> None:
    logging.disable(logging.WARNING)
    process, port, directory = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        rows = [await bench_dockyard(url, jobs, paced), await bench_saq(url, jobs, paced),
                await bench_arq(port, jobs, paced), await bench_rq(port, jobs, paced)]
        batched = await bench_dockyard_batched(url, jobs * 4)
        print(f"{jobs} no-op jobs each; latency over {paced} paced jobs; {os.cpu_count()} cores")
        print(table(rows, batched))
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--paced", type=int, default=300)
    options = parser.parse_args()
    asyncio.run(main(options.jobs, options.paced))
