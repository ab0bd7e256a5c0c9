"""The agent looks after its own disk, with or without the control plane: every
`check_seconds` it reads the file systems it writes to (its state, Docker's data root), and
once the fullest is `fraction` used it cleans at once, then not again by itself within
`pause_seconds`. A cleaning removes the stopped containers the agent made that its desired
state does not hold (one-off runs remove their own), the release images (`deploy_*` tags)
of each app but its newest `keep_releases` (Docker refuses to remove one a container uses),
and dangling images and build cache past their age (younger ones are what warm builds
reuse). The last KEPT cleanings are kept in memory for the control plane, which records each
as a server event; `POST /disk/clean` cleans now, whatever the threshold and the pause."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from uuid import uuid4

from dockyard.agent.cache_prune import prune_cache
from dockyard.agent.models import CachePruneRequest, ContainerSummary, PruneRequest
from dockyard.agent.node import Node
from dockyard.agent.parts import Parts
from dockyard.agent.processes import ONE_OFF_LABEL
from dockyard.agent.web import Call, Routes
from dockyard.models.app_metrics import FileSystemUsage
from dockyard.models.disk import DiskCleanup, Trigger, docker_free_bytes, used_fraction

log = logging.getLogger("dockyard.agent")
KEPT = 20
STOPPED = frozenset({"exited", "dead"})


@dataclass(frozen=True)
class GuardRules:
    check_seconds: float = 60.0  # 0: the guard does not run (cleaning on request still does)
    fraction: float = 0.85
    pause_seconds: float = 600.0
    keep_releases: int = 3
    cache: CachePruneRequest = field(default_factory=CachePruneRequest)


@dataclass(frozen=True)
class Removed:
    release_tags: list[str]
    dangling_images: int
    containers: list[str]


def removable(found: ContainerSummary, wanted: set[str]) -> bool:
    """Stopped, not to be restored, and not a one-off run (which removes its container
    itself once it has read the exit code)."""
    return (found.state in STOPPED and found.name not in wanted
            and ONE_OFF_LABEL not in found.labels)


async def remove_stopped(node: Node) -> list[str]:
    """The stopped containers the agent made and does not mean to restore."""
    wanted = set(node.state.containers)
    doomed = [found.name for found in await node.containers({}) if removable(found, wanted)]
    for name in doomed:
        await node.remove_container(name)
    return doomed


async def remove_prunable(node: Node, rules: GuardRules) -> Removed:
    """Containers first: an image only a stopped container used can go with them."""
    containers = await remove_stopped(node)
    pruned = await node.prune(PruneRequest(keep=rules.keep_releases))
    cache = await prune_cache(node.runtime, rules.cache)
    return Removed(pruned.removed, cache.images_removed, containers)


def cleanup_of(trigger: Trigger, before: list[FileSystemUsage], after: list[FileSystemUsage],
               removed: Removed) -> DiskCleanup:
    return DiskCleanup(
        id=uuid4().hex, at=time.time(), trigger=trigger, used_before=used_fraction(before),
        used_after=used_fraction(after), release_tags_removed=removed.release_tags,
        dangling_images_removed=removed.dangling_images,
        containers_removed=removed.containers,
        bytes_freed=max(docker_free_bytes(after) - docker_free_bytes(before), 0))


class DiskGuard:
    def __init__(self, node: Node, rules: GuardRules) -> None:
        self.node, self.rules = node, rules
        self.cleanups: deque[DiskCleanup] = deque(maxlen=KEPT)
        self._last: float | None = None  # monotonic time of the last cleaning
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # Docker away, say: the next round tries again
                log.exception("disk guard: the disk was not checked or not cleaned")
            await asyncio.sleep(self.rules.check_seconds)

    async def check(self) -> DiskCleanup | None:
        """A cleaning, when the disk is past the threshold and the pause is over."""
        if self._paused() or used_fraction(await self.node.disks.read()) < self.rules.fraction:
            return None
        return await self.clean("threshold")

    def _paused(self) -> bool:
        return (self._last is not None
                and time.monotonic() - self._last < self.rules.pause_seconds)

    async def clean(self, trigger: Trigger) -> DiskCleanup:
        """Clean now (one cleaning at a time), and keep what it did."""
        async with self._lock:
            before = await self.node.disks.read()
            removed = await remove_prunable(self.node, self.rules)
            cleanup = cleanup_of(trigger, before, await self.node.disks.read(), removed)
            self._last = time.monotonic()
        self.cleanups.append(cleanup)
        log.info("disk guard: %s", cleanup.summary())
        return cleanup


routes: Routes[Parts] = Routes()


@routes.get("/disk/cleanups")
async def cleanups(call: Call[Parts]) -> list[DiskCleanup]:
    """The last cleanings, oldest first."""
    return list(call.parts.disk_guard.cleanups)


@routes.post("/disk/clean")
async def clean(call: Call[Parts]) -> DiskCleanup:
    return await call.parts.disk_guard.clean("request")
