"""The agent's app request metrics: it tails the edge's JSON request log (see
`dockyard.agent.nginx` for what is logged and what is not), attributes each request to its
service and to the release of the container that answered, and counts them in buckets of
BUCKET_SECONDS per (service, release); a request counts in the bucket of the moment it ended.

Bounds: the log is rotated by its reader (`dockyard.agent.logrotate`: renamed to
`requests.log.1`, the older ones moved up, and nginx told to reopen it with USR1) once it is
past the agent's `log_max_bytes` (16 MiB, some 80,000 requests) or `log_max_age_hours`, and only
while the tail reads the live file, so no line is lost or read twice across a rotation as long
as nginx flushes into the renamed file within GRACE_READS polls (it flushes every second, and
before it reopens). Closed buckets wait in memory for the control plane, at most
MAX_BUCKETS (the oldest are dropped and counted as `lost`). A bucket closes SETTLE_SECONDS
after its end (nginx flushes its buffer every second); a line later than that starts a second
bucket of the same key, which adds up. The read position is kept in `requests.position`, so
a restarted agent goes on where it left off, in a rotated file if it was reading one (the open
bucket and the uncollected closed ones are lost)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread

from dockyard.agent import logrotate, nginx
from dockyard.agent.commands import DEPLOYMENT_LABEL
from dockyard.agent.logrotate import Bound, Rotation
from dockyard.agent.logtail import LogTail, Position
from dockyard.agent.models import ContainerSummary, Site
from dockyard.agent.node import Node
from dockyard.agent.proxy import NginxInstance
from dockyard.models.app_metrics import (
    BUCKET_SECONDS,
    RequestBucket,
    RequestMetricsPage,
    empty_histogram,
    histogram_index,
)

POLL_SECONDS = 1.0
SETTLE_SECONDS = 3
DEFAULT_BOUND = Bound(max_bytes=16 * 1024**2, files=2, max_age_seconds=7 * 86400)
MAX_BUCKETS = 10_000
PAGE_BUCKETS = 1000
REFRESH_SECONDS = 5.0  # an address no container publishes looks again at most this often
log = logging.getLogger("dockyard.agent")


@dataclass(frozen=True)
class LoggedRequest:
    """One line of the edge's request log."""

    at: float
    host: str
    service: str
    upstream: str
    status: int
    seconds: float
    bytes_sent: int


def parse_line(line: bytes) -> LoggedRequest:
    """A log line; ValueError (or a subclass) when it is not one."""
    raw: dict[str, Any] = json.loads(line)
    return LoggedRequest(at=float(raw["msec"]), host=str(raw["host"]),
                         service=str(raw["service"]), upstream=str(raw["upstream"]),
                         status=int(raw["status"]), seconds=float(raw["request_time"]),
                         bytes_sent=int(raw["bytes_sent"]))


def answering_port(upstream: str) -> int | None:
    """The port of the last address nginx tried (`a, b : c` lists every attempt)."""
    last = re.split(r", | : ", upstream.strip())[-1]
    port = last.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def release_of(container: ContainerSummary) -> str:
    return container.labels.get(DEPLOYMENT_LABEL, "")[:8]


def releases_by_port(containers: list[ContainerSummary]) -> dict[int, str]:
    """Which release answers on each host port published on this node."""
    return {port.host_port: release_of(c) for c in containers for port in c.ports}


@dataclass
class Counts:
    requests: int = 0
    statuses: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    bytes_sent: int = 0
    latency: list[int] = field(default_factory=empty_histogram)

    def add(self, request: LoggedRequest) -> None:
        self.requests += 1
        self.statuses[min(max(request.status // 100, 2), 5) - 2] += 1
        self.bytes_sent += request.bytes_sent
        self.latency[histogram_index(request.seconds * 1000)] += 1

    def bucket(self, service: str, release: str, start: int) -> RequestBucket:
        s2, s3, s4, s5 = self.statuses
        return RequestBucket(service=service, release=release, start=start,
                             requests=self.requests, status_2xx=s2, status_3xx=s3,
                             status_4xx=s4, status_5xx=s5, bytes_sent=self.bytes_sent,
                             latency=self.latency)


Key = tuple[str, str, int]  # service, release, bucket start


class Aggregator:
    """Open buckets; `close` hands over those that ended SETTLE_SECONDS ago, oldest first."""

    def __init__(self) -> None:
        self.open: dict[Key, Counts] = {}

    def add(self, request: LoggedRequest, service: str, release: str) -> None:
        start = int(request.at // BUCKET_SECONDS) * BUCKET_SECONDS
        self.open.setdefault((service, release, start), Counts()).add(request)

    def close(self, now: float) -> list[RequestBucket]:
        ended = sorted((key for key in self.open
                        if key[2] + BUCKET_SECONDS + SETTLE_SECONDS <= now),
                       key=lambda key: (key[2], key[0], key[1]))
        return [self.open.pop(key).bucket(*key) for key in ended]


class BucketBuffer:
    """Closed buckets, at most `size` of them kept, numbered on from the agent's start time
    in milliseconds: a restarted agent's numbers continue past the cursors given out before."""

    def __init__(self, size: int = MAX_BUCKETS, first: int | None = None) -> None:
        self._kept: deque[tuple[int, RequestBucket]] = deque(maxlen=size)
        self._last = int(time.time() * 1000) if first is None else first
        self.lost = 0

    def extend(self, buckets: list[RequestBucket]) -> None:
        for bucket in buckets:
            if len(self._kept) == self._kept.maxlen:
                self.lost += 1
            self._last += 1
            self._kept.append((self._last, bucket))

    def page(self, after: int, limit: int = PAGE_BUCKETS) -> RequestMetricsPage:
        """Buckets numbered over `after`; a cursor past the last (the clock went back)
        reads from the oldest kept."""
        after = after if after <= self._last else 0
        found = [(seq, bucket) for seq, bucket in self._kept if seq > after][:limit]
        cursor = found[-1][0] if found else after
        return RequestMetricsPage(cursor=cursor, buckets=[b for _, b in found], lost=self.lost)


Containers = Callable[[], Coroutine[Any, Any, list[ContainerSummary]]]


class Releases:
    """Host port -> release, from the node's containers; looked up again when an address
    nobody publishes appears (at most every REFRESH_SECONDS) or the sites changed."""

    def __init__(self, containers: Containers) -> None:
        self._containers = containers
        self._ports: dict[int, str] = {}
        self._refreshed = -REFRESH_SECONDS
        self._sites: list[Site] | None = None

    async def prepare(self, ports: set[int], sites: list[Site]) -> None:
        unknown = bool(ports - self._ports.keys())
        stale = time.monotonic() - self._refreshed >= REFRESH_SECONDS
        if sites != self._sites or (unknown and stale):
            await self._refresh()
            self._sites = sites

    async def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        try:
            self._ports = releases_by_port(await self._containers())
        except Exception as exc:  # Docker away: the requests still count, without release
            log.warning("could not list containers for request metrics: %s", exc)

    def get(self, port: int | None) -> str:
        return self._ports.get(port, "") if port is not None else ""


class RequestCollector:
    """Reads the edge's request log every POLL_SECONDS into buckets; `page` serves them."""

    def __init__(self, edge: NginxInstance, sites: Callable[[], list[Site]],
                 containers: Containers, position_file: Path,
                 bound: Bound = DEFAULT_BOUND) -> None:
        self.edge = edge
        self.rotation = Rotation(bound)
        self.path = edge.layout.requests_log
        self._sites = sites
        self._position_file = position_file
        self._saved = _load_position(position_file)
        self.tail = LogTail(self.path, self._saved, [logrotate.rotated(self.path, n)
                                                     for n in range(1, bound.files + 1)])
        self.aggregator = Aggregator()
        self.buffer = BucketBuffer()
        self.releases = Releases(containers)
        self.malformed = 0
        self.unattributed = 0  # lines of names no site routes

    @classmethod
    def for_node(cls, node: Node, bound: Bound = DEFAULT_BOUND) -> RequestCollector:
        async def containers() -> list[ContainerSummary]:
            return await node.containers({})
        return cls(node.nginx.edge, node.sites, containers,
                   node.state_dir / "requests.position", bound)

    def page(self, after: int, limit: int = PAGE_BUCKETS) -> RequestMetricsPage:
        return self.buffer.page(after, limit)

    async def step(self, now: float) -> None:
        """Read what was logged, count it, close the buckets that ended, keep the log short."""
        requests = await to_thread.run_sync(lambda: self._parse(self._read()))
        sites = self._sites()
        ports = {port for r in requests if (port := answering_port(r.upstream)) is not None}
        await self.releases.prepare(ports, sites)
        routes = nginx.host_routes(sites)
        for request in requests:
            self._count(request, routes)
        self.buffer.extend(self.aggregator.close(now))
        await to_thread.run_sync(self._keep_bounded)

    async def run(self) -> None:
        while True:
            try:
                await self.step(time.time())
            except Exception:  # the next round tries again; nothing here may stop the agent
                log.exception("request metrics: collecting failed")
            await asyncio.sleep(POLL_SECONDS)

    def _read(self) -> list[bytes]:
        lines: list[bytes] = []
        for _ in range(4):  # at most 16 MiB a round
            if not (batch := self.tail.read()):
                break
            lines += batch
        return lines

    def _parse(self, lines: list[bytes]) -> list[LoggedRequest]:
        requests = []
        for line in lines:
            try:
                requests.append(parse_line(line))
            except (ValueError, KeyError, TypeError):
                self.malformed += 1
        return requests

    def _count(self, request: LoggedRequest, routes: dict[str, str]) -> None:
        service = request.service or routes.get(request.host, "")
        if not service:
            self.unattributed += 1
            return
        self.aggregator.add(request, service, self.releases.get(answering_port(request.upstream)))

    def _keep_bounded(self) -> None:
        """Rotate a log that is due and have nginx open a new one; the tail reads the renamed
        one to its end first. A log deleted by hand is opened again too (nginx would write
        into the deleted file). Then keep the position."""
        rotate = self.tail.reading_current() and self.rotation.due(self.path)
        if rotate:
            logrotate.rename(self.path, self.rotation.bound)
            self.rotation.rotated(self.path)
        if rotate or (self.tail.position is not None and not self.path.exists()):
            self.edge.reopen_logs()
        if (position := self.tail.position) not in (None, self._saved):
            _save_position(self._position_file, position)
            self._saved = position


def _load_position(path: Path) -> Position | None:
    try:
        raw = json.loads(path.read_text())
        return Position(int(raw["inode"]), int(raw["offset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_position(path: Path, position: Position | None) -> None:
    if position is not None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"inode": position.inode, "offset": position.offset}))
        temporary.replace(path)


@asynccontextmanager
async def in_background(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `jobs` while the context lasts; cancelled when it ends."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
