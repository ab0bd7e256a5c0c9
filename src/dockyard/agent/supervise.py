"""The agent's supervisor: both nginx layers run whatever kills them.

Every `interval` seconds it checks that each layer's master (its pid file, and that process
alive and still that nginx) runs; a dead layer is started again from the desired state
(rendered anew, `nginx -t`, started), the workers its master left behind killed first. A
layer that keeps dying is restarted after a growing pause (1, 2, 4 ... `max_backoff` s).
Each restart, or failure to restart, is an event kept on disk (`EventLog`).

Its messages go to the agent's own stderr only, never to the container log buffer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from dockyard.agent.models import SupervisionAction, SupervisionEvent
from dockyard.agent.proxy import NginxInstance, write_atomically

log = logging.getLogger("dockyard.agent.supervise")
STABLE_SECONDS = 30.0  # a layer that lived this long after its restart is healthy again
_EVENTS = TypeAdapter(list[SupervisionEvent])
Revive = Callable[[NginxInstance], Awaitable[bool]]  # restarts a dead layer; whether it did


class EventLog:
    """The newest supervision events, in a small JSON file that survives agent restarts."""

    def __init__(self, path: Path, keep: int = 100) -> None:
        self.path = path
        self._events: deque[SupervisionEvent] = deque(self._load(), maxlen=keep)

    def _load(self) -> list[SupervisionEvent]:
        try:
            return _EVENTS.validate_json(self.path.read_bytes())
        except (OSError, ValidationError):
            return []

    def add(self, event: SupervisionEvent) -> None:
        self._events.append(event)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, _EVENTS.dump_json(list(self._events)).decode())

    def recent(self, count: int = 20) -> list[SupervisionEvent]:
        """The last `count` events, oldest first."""
        return list(self._events)[-count:]


def backoff(failures: int, max_backoff: float) -> float:
    """The pause before restart attempt number `failures + 1` of a layer that keeps dying."""
    return 0.0 if failures == 0 else min(max_backoff, 2.0 ** (failures - 1))


@dataclass
class Watch:
    """What the supervisor knows of one layer between two checks."""

    name: str
    instance: NginxInstance
    failures: int = 0
    down_since: float | None = None
    not_before: float = 0.0
    last_start: float = float("-inf")

    def noticed_dead(self, now: float, max_backoff: float) -> None:
        """First seen dead: a death soon after its last restart counts as a failure."""
        self.down_since = now
        self.failures = self.failures + 1 if now - self.last_start < STABLE_SECONDS else 0
        self.not_before = now + backoff(self.failures, max_backoff)


class Supervisor:
    """Keeps the node's nginx layers running; `revive` restarts one under the node's lock."""

    def __init__(self, layers: dict[str, NginxInstance], revive: Revive, events: EventLog,
                 *, interval: float = 1.0, max_backoff: float = 30.0) -> None:
        self.watches = [Watch(name, instance) for name, instance in layers.items()]
        self.revive = revive
        self.events = events
        self.interval = interval
        self.max_backoff = max_backoff

    async def run(self) -> None:
        """Check forever; cancelled (never fought) when the agent stops."""
        while True:
            await self.check_all()
            await asyncio.sleep(self.interval)

    async def check_all(self) -> None:
        for watch in self.watches:
            try:
                await self.check(watch)
            except Exception:  # one bad check must not end supervision
                log.exception("supervising %s failed", watch.name)

    async def check(self, watch: Watch) -> None:
        if watch.instance.running_pid() is not None:
            watch.down_since = None
            return
        now = time.monotonic()
        if watch.down_since is None:
            watch.noticed_dead(now, self.max_backoff)
        if now >= watch.not_before:
            await self.restart(watch, now)

    async def restart(self, watch: Watch, now: float) -> None:
        attempt = watch.failures + 1
        try:
            restarted = await self.revive(watch.instance)
        except Exception as exc:  # whatever stopped it, the layer is still down: try later
            watch.failures += 1
            watch.not_before = time.monotonic() + backoff(watch.failures, self.max_backoff)
            self.record(watch.name, "restart failed", f"attempt {attempt}: {exc}")
            return
        watch.down_since = None
        if not restarted:  # started meanwhile by a site change
            return
        took = time.monotonic() - now
        watch.last_start = time.monotonic()
        self.record(watch.name, "restarted",
                    f"its master had died; started again in {took:.2f} s (attempt {attempt})")

    def record(self, process: str, action: SupervisionAction, detail: str) -> None:
        event = SupervisionEvent(time=datetime.now(UTC), process=process, action=action,
                                 detail=detail)
        log.warning("%s %s: %s", process, action, detail)
        self.events.add(event)

