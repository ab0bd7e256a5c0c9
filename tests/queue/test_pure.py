"""Pure parts of the queue: key names, the breaker's states, the backoff schedule, cron."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dockyard.kernel.queue import keys
from dockyard.kernel.queue.breaker import BreakerState, CircuitBreaker
from dockyard.kernel.queue.jobs import Job, backoff_delay
from dockyard.kernel.queue.periodic import Periodic


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_key_names() -> None:
    assert keys.stream("default") == "dockyard:queue:default"
    assert keys.delayed("default") == "dockyard:delayed:default"
    assert keys.dead("default") == "dockyard:dead:default"
    assert keys.idempotency("mail", "welcome-42") == "dockyard:idem:mail:welcome-42"
    assert keys.GROUP == "dockyard-workers"


def test_breaker_opens_after_threshold_failures_in_a_row() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after=5, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through_and_closes_on_its_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(), "only one probe at a time"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_a_failed_probe_opens_the_breaker_for_another_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=5, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_the_reset_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    clock.now += 5
    assert breaker.allow()


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    schedule = [backoff_delay(attempt, base=0.5, cap=10) for attempt in range(1, 8)]
    assert schedule == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_jitter_stays_within_its_fraction() -> None:
    delays = {backoff_delay(3, base=1, jitter=0.1) for _ in range(200)}
    assert all(3.6 <= d <= 4.4 for d in delays)
    assert len(delays) > 1


def test_job_round_trips_through_its_encoding() -> None:
    job = Job("mail.send", {"to": "a@example.com"}, "mail", key="user-1", request_id="req-1")
    assert Job.decode(job.encode()) == job
    assert job.idempotency_key == job.id
    assert job.next_attempt().attempt == 2


def test_periodic_next_tick_follows_cron() -> None:
    every_five = Periodic("report", "*/5 * * * *", "reports.build")
    start = datetime(2026, 1, 1, 0, 3, 10, tzinfo=UTC).timestamp()
    assert every_five.next_after(start) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    each_second = Periodic("tick", "* * * * * *", "tick")
    assert each_second.next_after(start) == start + 1
    assert every_five.idempotency_key(1767225900.0) == "periodic:report:1767225900"


def test_periodic_refuses_a_bad_schedule() -> None:
    with pytest.raises(ValueError, match="not a cron schedule"):
        Periodic("bad", "every tuesday", "x")
