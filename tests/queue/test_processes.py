"""Workers as real processes: SIGKILL mid-job (another worker takes it over), SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dockyard.kernel.queue import QueueManager, keys
from tests.queue.helpers import eventually
from tests.queue.sample_tasks import DONE, STARTED

ROOT = Path(__file__).resolve().parents[2]
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn_worker(tmp_path: Path, redis_url: str) -> Iterator[Spawn]:
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(*extra: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "dockyard.kernel.queue.worker", "--redis-url", redis_url,
                "--tasks", "tests.queue.sample_tasks:TASKS", *extra]
        env = {**os.environ, "DOCKYARD_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
        log = (tmp_path / f"worker-{len(processes)}.log").open("wb")
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def held_job(redis_url: str, redis: Redis) -> AsyncIterator[str]:
    """A job that runs until the test deletes its hold key."""
    await redis.set("test:hold", "1")
    queue = QueueManager(redis_url)
    result = await queue.enqueue("hold", {"redis_url": redis_url, "hold_key": "test:hold"})
    await queue.close()
    return result.job_id


async def _count(redis: Redis, name: str, wanted: int) -> bool:
    return int(await redis.llen(name)) >= wanted


async def test_a_job_of_a_killed_worker_is_reclaimed_and_completed_by_another(
    spawn_worker: Spawn, redis: Redis, held_job: str
) -> None:
    first = spawn_worker("--reclaim-after", "1")
    await eventually(lambda: _count(redis, STARTED, 1), what="the first worker to start the job")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    await redis.delete("test:hold")
    spawn_worker("--reclaim-after", "1")
    await eventually(lambda: _count(redis, DONE, 1), what="the second worker to finish the job")
    started, done = await redis.lrange(STARTED, 0, -1), await redis.lrange(DONE, 0, -1)
    assert len(done) == 1
    assert done[0] != started[0], "finished by the other worker"

    async def settled() -> bool:
        return await redis.xlen(keys.stream("default")) == 0

    await eventually(settled, what="the job's entry to be acknowledged")


async def test_sigterm_hands_back_a_job_that_does_not_finish_in_the_grace_period(
    spawn_worker: Spawn, redis: Redis, held_job: str
) -> None:
    worker = spawn_worker("--shutdown-grace", "0.3")
    await eventually(lambda: _count(redis, STARTED, 1), what="the worker to start the job")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    [(_id, fields)] = await redis.xrange(keys.stream("default"))
    assert held_job in fields["job"]
    summary = await redis.xpending(keys.stream("default"), keys.GROUP)
    assert summary["pending"] == 0, "handed back, not left to be reclaimed"


async def test_sigterm_lets_the_job_in_hand_finish(
    spawn_worker: Spawn, redis: Redis, held_job: str
) -> None:
    worker = spawn_worker("--shutdown-grace", "20")
    await eventually(lambda: _count(redis, STARTED, 1), what="the worker to start the job")
    worker.send_signal(signal.SIGTERM)
    await redis.delete("test:hold")
    assert worker.wait(timeout=15) == 0
    assert await redis.llen(DONE) == 1
    assert await redis.xlen(keys.stream("default")) == 0
