"""The autoscaler's decision, a pure function of a policy and what was measured: how many
`web` replicas per server a service should run, and why (or why it cannot)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

MIB = 1 << 20
# Without recent figures from every server of the service, the traffic and CPU it reads may
# be stale too (the worker's app_metrics.collect job gathers both): it changes nothing.
NO_FIGURES = "not scaled: no recent figures from every server of the service"


@dataclass(frozen=True)
class Policy:
    """Bounds (web replicas per server) and one target per replica."""

    min: int
    max: int
    target_rps: float | None
    target_cpu: float | None
    cooldown_seconds: int

    @property
    def out_cooldown_seconds(self) -> float:
        """Scaling out waits a quarter of the cool-down after a change (so the replicas it
        added are counted before it adds more); scaling in waits all of it."""
        return self.cooldown_seconds / 4


@dataclass(frozen=True)
class Load:
    """The service over the window, every server together: requests per second, or CPU
    percent of its containers summed; `servers` it runs on."""

    value: float
    servers: int


@dataclass(frozen=True)
class Room:
    """The least free memory on the service's servers (None unless every one of them
    reported lately), and what one replica needs (None while unknown)."""

    free_bytes: int | None
    replica_bytes: int | None


@dataclass(frozen=True)
class Decision:
    """Scale from `current` to `to` replicas per server; `blocked` says why not ("" to act).
    Steady when `to == current` and nothing blocks."""

    current: int
    to: int
    reason: str
    blocked: str = ""

    @property
    def steady(self) -> bool:
        return self.to == self.current and not self.blocked


def decide(policy: Policy, current: int, load: Load, room: Room, last_change: datetime | None,
           now: datetime) -> Decision:
    """Toward ceil(load / target) replicas within [min, max]: out at once (within memory),
    in one step at a time after the cool-down."""
    wanted = wanted_replicas(policy, load)
    reason = describe(policy, current, load)
    since = (now - last_change).total_seconds() if last_change else math.inf
    step = wanted if wanted > current else current - 1
    if wanted != current and room.free_bytes is None:
        return Decision(current, step, reason, NO_FIGURES)
    if wanted > current:
        if since < policy.out_cooldown_seconds:
            return Decision(current, wanted, reason, cooldown("out", policy.out_cooldown_seconds))
        return _within_memory(current, wanted, reason, room)
    if wanted < current:
        if since < policy.cooldown_seconds:
            return Decision(current, current - 1, reason, cooldown("in", policy.cooldown_seconds))
        return Decision(current, current - 1, reason)
    return Decision(current, current, reason)


def wanted_replicas(policy: Policy, load: Load) -> int:
    """ceil(load / (target x servers)) replicas per server, clamped to [min, max]."""
    return min(max(needed(policy, load), policy.min), policy.max)


def needed(policy: Policy, load: Load) -> int:
    target = policy.target_rps or policy.target_cpu or 1.0
    return math.ceil(load.value / (target * max(load.servers, 1)))


def describe(policy: Policy, current: int, load: Load) -> str:
    """"42.0 req/s over 2 replicas > target 15/replica" (with the bound that applied)."""
    total = current * load.servers
    per = load.value / total if total else math.inf
    target = policy.target_rps if policy.target_rps is not None else policy.target_cpu or 0.0
    sign = ">" if per > target else "<" if per < target else "="
    unit = "/replica" if policy.target_rps is not None else "%/replica"
    what = f"{load.value:.1f} req/s" if policy.target_rps is not None else \
        f"{load.value:.0f}% CPU"
    text = f"{what} over {total} replica{'' if total == 1 else 's'} {sign} target {target:g}{unit}"
    raw = needed(policy, load)
    bound = f"max {policy.max}" if raw > policy.max else f"min {policy.min}" \
        if raw < policy.min else ""
    return f"{text} (at {bound})" if bound else text


def cooldown(way: str, wait: float) -> str:
    return f"cool-down: scaling {way} waits {wait:g} s after a change"


def _within_memory(current: int, wanted: int, reason: str, room: Room) -> Decision:
    if room.free_bytes is None or room.replica_bytes is None:
        return Decision(current, wanted, reason,
                        "not scaled out: the memory a replica uses is not known yet")
    fits = room.free_bytes // room.replica_bytes if room.replica_bytes else wanted - current
    capped = (f"capped by memory: servers have {room.free_bytes // MIB} MiB free, a replica "
              f"needs {math.ceil(room.replica_bytes / MIB)} MiB")
    if fits <= 0:
        return Decision(current, wanted, reason, capped)
    if current + fits < wanted:
        return Decision(current, current + fits, f"{reason}; {capped}")
    return Decision(current, wanted, reason)
