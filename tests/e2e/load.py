"""A strict client (keep-alive, no retries) through one node's nginx while an action runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from bench.nginx_reload import Tally, worker

from tests.e2e.stage import Stage


def under_strict_load(stage: Stage, host: str, action: Callable[[], Any],
                      concurrency: int = 16) -> Tally:
    """The tally of GET / for `host` through the first node's nginx while `action` runs."""
    tally, stop = Tally(), threading.Event()
    load = threading.Thread(
        target=lambda: asyncio.run(_load(stage, host, concurrency, tally, stop)))
    load.start()
    try:
        action()
    finally:
        stop.set()
        load.join()
    return tally


async def _load(stage: Stage, host: str, concurrency: int, tally: Tally,
                stop: threading.Event) -> None:
    halt = asyncio.Event()
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    workers = [asyncio.create_task(worker(80, halt, tally, stage.nodes[0]["ip"], request))
               for _ in range(concurrency)]
    await asyncio.to_thread(stop.wait)
    halt.set()
    await asyncio.gather(*workers)
