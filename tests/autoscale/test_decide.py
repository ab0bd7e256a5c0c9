"""The autoscaler's decision as a table: bounds, targets, cool-downs, one step in, memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dockyard.core.autoscale_rules import Decision, Load, Policy, Room, decide

NOW = datetime(2026, 12, 2, 21, 0, tzinfo=UTC)
RPS = Policy(min=1, max=4, target_rps=15, target_cpu=None, cooldown_seconds=60)
CPU = Policy(min=2, max=6, target_rps=None, target_cpu=70, cooldown_seconds=60)
MIB = 1 << 20
ROOMY = Room(free_bytes=4096 * MIB, replica_bytes=256 * MIB)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(("policy", "current", "load", "room", "last", "expected"), [
    # steady: within target, nothing to do
    (RPS, 2, Load(25.0, 1), ROOMY, None,
     Decision(2, 2, "25.0 req/s over 2 replicas < target 15/replica")),
    # out at once, as far as the load asks
    (RPS, 2, Load(42.0, 1), ROOMY, None,
     Decision(2, 3, "42.0 req/s over 2 replicas > target 15/replica")),
    (RPS, 1, Load(90.0, 2), ROOMY, ago(30),
     Decision(1, 3, "90.0 req/s over 2 replicas > target 15/replica")),
    # never past max
    (RPS, 2, Load(400.0, 1), ROOMY, None,
     Decision(2, 4, "400.0 req/s over 2 replicas > target 15/replica (at max 4)")),
    # out waits a quarter of the cool-down after a change
    (RPS, 2, Load(42.0, 1), ROOMY, ago(10),
     Decision(2, 3, "42.0 req/s over 2 replicas > target 15/replica",
              "cool-down: scaling out waits 15 s after a change")),
    # in: one step at a time, after the whole cool-down
    (RPS, 4, Load(3.0, 1), ROOMY, ago(61),
     Decision(4, 3, "3.0 req/s over 4 replicas < target 15/replica")),
    (RPS, 4, Load(3.0, 1), ROOMY, ago(59),
     Decision(4, 3, "3.0 req/s over 4 replicas < target 15/replica",
              "cool-down: scaling in waits 60 s after a change")),
    # never below min, even without traffic
    (RPS, 1, Load(0.0, 3), ROOMY, None,
     Decision(1, 1, "0.0 req/s over 3 replicas < target 15/replica (at min 1)")),
    # CPU: summed over the service's containers, raised to min
    (CPU, 1, Load(50.0, 1), ROOMY, None,
     Decision(1, 2, "50% CPU over 1 replica < target 70%/replica (at min 2)")),
    (CPU, 2, Load(300.0, 1), ROOMY, None,
     Decision(2, 5, "300% CPU over 2 replicas > target 70%/replica")),
    # memory: no room at all, room for some, figures unknown
    (RPS, 2, Load(60.0, 1), Room(300 * MIB, 512 * MIB), None,
     Decision(2, 4, "60.0 req/s over 2 replicas > target 15/replica",
              "capped by memory: servers have 300 MiB free, a replica needs 512 MiB")),
    (RPS, 1, Load(60.0, 1), Room(600 * MIB, 256 * MIB), None,
     Decision(1, 3, "60.0 req/s over 1 replica > target 15/replica; capped by "
                    "memory: servers have 600 MiB free, a replica needs 256 MiB")),
    (RPS, 1, Load(60.0, 1), Room(None, 256 * MIB), None,
     Decision(1, 4, "60.0 req/s over 1 replica > target 15/replica",
              "not scaled: no recent figures from every server of the service")),
    (RPS, 1, Load(60.0, 1), Room(4096 * MIB, None), None,
     Decision(1, 4, "60.0 req/s over 1 replica > target 15/replica",
              "not scaled out: the memory a replica uses is not known yet")),
    # without recent figures it does not scale in either (the traffic may be stale too)
    (RPS, 3, Load(10.0, 1), Room(None, None), None,
     Decision(3, 2, "10.0 req/s over 3 replicas < target 15/replica",
              "not scaled: no recent figures from every server of the service")),
    (RPS, 3, Load(45.0, 1), Room(None, None), None,
     Decision(3, 3, "45.0 req/s over 3 replicas = target 15/replica")),
    # memory does not hold back scaling in
    (RPS, 3, Load(10.0, 1), Room(0, 512 * MIB), None,
     Decision(3, 2, "10.0 req/s over 3 replicas < target 15/replica")),
])
def test_decide(policy: Policy, current: int, load: Load, room: Room, last: datetime | None,
                expected: Decision) -> None:
    assert decide(policy, current, load, room, last, NOW) == expected


def test_only_an_unblocked_unchanged_decision_is_steady() -> None:
    assert Decision(2, 2, "x").steady
    assert not Decision(2, 3, "x").steady
    assert not Decision(2, 2, "x", "cool-down").steady
