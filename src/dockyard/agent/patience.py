"""Waiting for an agent that restarts: a call that could not reach it is made again, with
backoff, for a bounded window (an agent restart, upgrade or reboot takes seconds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

T = TypeVar("T")
# The agent is not there (yet): refused, reset, or gone in the middle of an answer. A read
# timeout is not among them: an agent that answers slowly is there.
AWAY = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
        httpx.RemoteProtocolError)
FIRST_DELAY, MAX_DELAY = 0.25, 5.0


class AgentAway(httpx.TransportError):
    """The agent stayed unreachable for the whole window."""

    def __init__(self, seconds: float, cause: Exception) -> None:
        super().__init__(f"it did not answer for {seconds:g} s, the wait allowed "
                         f"(DOCKYARD_AGENT_WAIT_SECONDS); last: {type(cause).__name__}: {cause}")


Waiting = Callable[[str, float], Awaitable[None]]
"""Told why the agent could not be reached and how many seconds of waiting are left."""


@dataclass(frozen=True)
class Patience:
    seconds: float
    on_wait: Waiting

    async def retry(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`, made again while the agent is away, until the window closes."""
        deadline, delay = time.monotonic() + self.seconds, FIRST_DELAY
        while True:
            try:
                return await attempt()
            except AWAY as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AgentAway(self.seconds, exc) from exc
                await self.on_wait(f"{type(exc).__name__}: {exc}" if str(exc)
                                   else type(exc).__name__, left)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, MAX_DELAY)
