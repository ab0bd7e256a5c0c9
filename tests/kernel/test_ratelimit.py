import pytest

from dockyard.kernel.errors import RateLimited
from dockyard.kernel.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_per_key_and_retry_after_counts_down():
    clock = Clock()
    limiter = RateLimiter(limit=2, window=60, clock=clock)
    limiter.hit("a")
    limiter.hit("a")
    limiter.hit("b")
    clock.now += 15
    with pytest.raises(RateLimited) as refused:
        limiter.hit("a")
    assert refused.value.retry_after == 45


def test_window_resets():
    clock = Clock()
    limiter = RateLimiter(limit=1, window=10, clock=clock)
    limiter.hit("a")
    clock.now += 10
    limiter.hit("a")
