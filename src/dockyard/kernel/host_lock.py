"""Machine-wide locks on files, taken with flock. Exclusive: one holder per machine (the
others keep asking and one takes over when the holder exits; the kernel drops the lock of a
process that dies, however it dies). Shared: any number of holders at once, while nobody holds
it exclusively; an exclusive asker waits until every shared holder has let go.

Waiting never blocks the event loop: the lock is asked for without blocking, again every
`retry_seconds`. flock belongs to an open file, so two holders in one process conflict too."""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

REGISTRY_LOCK = "registry.lock"
"""In the data dir: pushes to the registry hold it shared, its garbage collection exclusive
(a blob pushed while the collection runs, before a manifest refers to it, would be deleted)."""


@dataclass(frozen=True)
class Notice:
    """Said once when the wait for the lock has lasted `after_seconds`."""

    after_seconds: float
    say: Callable[[], Awaitable[None]]


def try_lock(handle: int, shared: bool = False) -> bool:
    """Take the lock on an open file descriptor if nobody holds it in a conflicting way;
    never waits."""
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@asynccontextmanager
async def held(path: Path, retry_seconds: float, shared: bool = False,
               notice: Notice | None = None, give_up_seconds: float | None = None
               ) -> AsyncIterator[int]:
    """Wait (asking every `retry_seconds`, saying `notice` if it lasts) until this process
    holds the lock at `path`, shared or exclusive; released on exit or cancellation.
    TimeoutError if it is still not free after `give_up_seconds` (None: wait for ever).
    Yields the lock's file descriptor: a child given it holds the lock until it exits too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        async with asyncio.timeout(give_up_seconds):
            await _wait_for(handle.fileno(), retry_seconds, shared, notice)
        yield handle.fileno()


async def _wait_for(handle: int, retry_seconds: float, shared: bool,
                    notice: Notice | None) -> None:
    started = time.monotonic()
    while not try_lock(handle, shared):
        if notice and time.monotonic() - started >= notice.after_seconds:
            await notice.say()
            notice = None
        await asyncio.sleep(retry_seconds)
