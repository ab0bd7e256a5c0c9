import pytest

from dockyard.kernel.errors import RateLimited
from dockyard.kernel.ratelimit import RateLimiter, SharedCounts


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


def shared_limiter(path, name="login", limit=2, window=60.0, clock=None):
    return RateLimiter(limit=limit, window=window, clock=clock or Clock(),
                       counts=SharedCounts(path, name))


def test_processes_sharing_the_file_share_the_limit(tmp_path):
    clock = Clock()
    first = shared_limiter(tmp_path / "limits.sqlite", clock=clock)
    second = shared_limiter(tmp_path / "limits.sqlite", clock=clock)  # its own connection
    first.hit("a")
    second.hit("a")
    clock.now += 20
    with pytest.raises(RateLimited) as refused:
        first.hit("a")
    assert refused.value.retry_after == 40
    with pytest.raises(RateLimited):
        second.hit("a")
    second.hit("b")


def test_a_shared_window_resets_and_names_keep_their_own_counts(tmp_path):
    clock = Clock()
    login = shared_limiter(tmp_path / "limits.sqlite", limit=1, window=10, clock=clock)
    hooks = shared_limiter(tmp_path / "limits.sqlite", "hooks", limit=1, window=10, clock=clock)
    login.hit("a")
    hooks.hit("a")
    with pytest.raises(RateLimited):
        login.hit("a")
    clock.now += 10
    login.hit("a")


def test_a_clock_that_went_back_starts_a_new_window(tmp_path):
    clock = Clock()
    limiter = shared_limiter(tmp_path / "limits.sqlite", limit=1, window=60, clock=clock)
    limiter.hit("a")
    clock.now -= 3600  # a wall clock set back (or a monotonic one after a reboot)
    limiter.hit("a")
    with pytest.raises(RateLimited):
        limiter.hit("a")
