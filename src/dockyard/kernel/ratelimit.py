"""Fixed-window attempt counters. In-process for the embedded control plane; a seam for Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.kernel.errors import RateLimited


@dataclass
class RateLimiter:
    """At most `limit` hits per key in each window of `window` seconds."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    _hits: dict[str, tuple[float, int]] = field(default_factory=dict)

    def hit(self, key: str) -> None:
        """Count one attempt for `key`; raise RateLimited when the window is used up."""
        now = self.clock()
        started, count = self._hits.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        if count >= self.limit:
            raise RateLimited(max(1, math.ceil(started + self.window - now)))
        self._hits[key] = (started, count + 1)
        self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        if len(self._hits) > 10_000:
            self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.window}
