"""The disk floor: a build or deploy does not start on a server whose file systems (Docker's
data root, the agent's state) are nearly full. Before building, each target's agent is asked
afresh; one under the floor is cleaned by its agent (as `dockyard servers prune` does) and
read again; one still under it fails the deployment at once, saying which server, how much
is free and what to do: nothing is pulled, built or started, the live release keeps
serving."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httpx

from dockyard.agent.client import AgentError
from dockyard.deploy.run import Run, Target
from dockyard.kernel.errors import Conflict
from dockyard.kernel.settings import Settings
from dockyard.models.app_metrics import FileSystemUsage
from dockyard.models.disk import DiskCleanup
from dockyard.models.enums import SourceKind

log = logging.getLogger("dockyard.deploy")
CHECK_SECONDS = 10.0  # an agent slower than this is not waited for: the deployment meets it
CLEAN_SECONDS = 120.0  # for its agent to clean a server found under the floor


@dataclass(frozen=True)
class Floor:
    """Free space a file system keeps: `fraction` of its size or `bytes`, the larger."""

    fraction: float
    bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Floor:
        return cls(settings.disk_floor_free_fraction, settings.disk_floor_free_bytes)

    def bytes_for(self, found: FileSystemUsage) -> int:
        return max(int(found.total_bytes * self.fraction), self.bytes)


def under_floor(file_systems: list[FileSystemUsage], floor: Floor) -> FileSystemUsage | None:
    """The first file system with less free space than the floor, if any."""
    return next((x for x in file_systems if x.free_bytes < floor.bytes_for(x)), None)


def size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def refusal(server: str, found: FileSystemUsage, floor: Floor,
            cleaned: DiskCleanup | None = None) -> str:
    return (f"server {server} is nearly out of disk: {size(found.free_bytes)} free of "
            f"{size(found.total_bytes)} on {found.path} ({', '.join(found.roles)}), under the "
            f"floor of {size(floor.bytes_for(found))}{_after(cleaned)}; nothing was changed. "
            f"Free space on {server} (`docker system df` there shows what Docker keeps; "
            f"{_what_goes(server, cleaned)}) or grow its disk, then deploy again")


def _after(cleaned: DiskCleanup | None) -> str:
    return "" if cleaned is None else (f" even after its agent cleaned it (freeing "
                                       f"{size(cleaned.bytes_freed)})")


def _what_goes(server: str, cleaned: DiskCleanup | None) -> str:
    removable = "old release images, stopped containers, dangling images and old build cache"
    if cleaned is None:
        return f"`dockyard servers prune {server}` removes {removable}"
    return f"its agent removed {removable} already: what is left is not Dockyard's to remove"


async def check(run: Run) -> None:
    """Conflict when a server of the deployment is under the floor even after its agent
    cleaned its disk. A rollback is not checked: it starts an image the servers kept, and it
    is the way back when a release that fills the disk must go."""
    if run.source_kind is SourceKind.ROLLBACK:
        return
    floor = Floor.of(run.settings)
    refusals = await asyncio.gather(*(_refusal(target, floor) for target in run.targets))
    refused = next((found for found in refusals if found is not None), None)
    if refused is not None:
        raise Conflict(refused)


async def _refusal(target: Target, floor: Floor) -> str | None:
    """Why the deployment may not go to `target`; None when it is over the floor, at once
    or once its agent cleaned it."""
    if under_floor(await _reading(target), floor) is None:
        return None
    cleaned = await _cleaned(target)
    found = under_floor(await _reading(target), floor)
    return None if found is None else refusal(target.name, found, floor, cleaned)


async def _cleaned(target: Target) -> DiskCleanup | None:
    try:
        return await asyncio.wait_for(target.client.clean_disk(), CLEAN_SECONDS)
    except (AgentError, httpx.HTTPError, OSError, TimeoutError) as exc:
        log.warning("disk of server %s not cleaned before deploying: %s", target.name, exc)
        return None


async def _reading(target: Target) -> list[FileSystemUsage]:
    """The agent's answer now; nothing when it cannot say (unreachable, or an agent too old
    to have the route): the deployment then meets that itself."""
    try:
        return await asyncio.wait_for(target.client.disk(), CHECK_SECONDS)
    except (AgentError, httpx.HTTPError, OSError, TimeoutError) as exc:
        log.warning("disk of server %s not checked before deploying: %s", target.name, exc)
        return []
