"""A circuit breaker: stop calling a failing dependency, probe it now and then, recover."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Opens after `failure_threshold` failures in a row. Once `reset_after` seconds have
    passed, one caller is let through as a probe (half-open): its success closes the
    breaker, its failure opens it again for another `reset_after`."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0

    def allow(self) -> bool:
        """May the caller try the dependency now? In half-open state only the probe may."""
        if self.state is BreakerState.CLOSED:
            return True
        now = self.clock()
        if now - self.opened_at < self.reset_after:
            return False
        self.state = BreakerState.HALF_OPEN
        self.opened_at = now  # a probe that never reports back is replaced after reset_after
        return True

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0

    def record_failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()
