"""One holder per machine: a lock file taken with flock by the first process that asks; the
others keep asking and one takes over when the holder exits (the kernel drops the lock of a
process that dies, however it dies)."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


def try_lock(handle: int) -> bool:
    """Take the lock on an open file descriptor if nobody holds it; never waits."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@asynccontextmanager
async def held(path: Path, retry_seconds: float) -> AsyncIterator[None]:
    """Wait (asking every `retry_seconds`) until this process holds the lock at `path`;
    released on exit or cancellation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        while not try_lock(handle.fileno()):  # noqa: ASYNC110 (another process frees it)
            await asyncio.sleep(retry_seconds)
        yield
