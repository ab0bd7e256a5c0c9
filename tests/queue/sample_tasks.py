"""Tasks the worker subprocesses of the tests load (`--tasks tests.queue.sample_tasks:TASKS`)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from dockyard.kernel.queue import JobContext, Tasks

TASKS = Tasks()
STARTED, DONE = "test:started", "test:done"


@TASKS.task("hold", max_attempts=1)
async def hold(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Announce the start, wait while the hold key exists, announce the end."""
    redis = Redis.from_url(payload["redis_url"], decode_responses=True)
    try:
        await redis.rpush(STARTED, ctx.worker)
        while await redis.exists(payload["hold_key"]):  # noqa: ASYNC110  (state is in Redis)
            await asyncio.sleep(0.02)
        await redis.rpush(DONE, ctx.worker)
    finally:
        await redis.aclose()
