"""The disk floor: a build or deploy does not start on a server whose file systems (Docker's
data root, the agent's state) are nearly full. Before building, each target's agent is asked
afresh; one under the floor fails the deployment at once, saying which server, how much is
free and what to do: nothing is pulled, built or started, the live release keeps serving."""

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
from dockyard.models.enums import SourceKind

log = logging.getLogger("dockyard.deploy")
CHECK_SECONDS = 10.0  # an agent slower than this is not waited for: the deployment meets it


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


def refusal(server: str, found: FileSystemUsage, floor: Floor) -> str:
    return (f"server {server} is nearly out of disk: {size(found.free_bytes)} free of "
            f"{size(found.total_bytes)} on {found.path} ({', '.join(found.roles)}), under the "
            f"floor of {size(floor.bytes_for(found))}; nothing was changed. Free space on "
            f"{server} (`docker system df` there shows what Docker keeps; old release images, "
            "stopped containers and dangling images go by themselves past "
            "DOCKYARD_DISK_CLEANUP_FRACTION) or grow its disk, then deploy again")


async def check(run: Run) -> None:
    """Conflict when a server of the deployment is under the floor. A rollback is not
    checked: it starts an image the servers kept, and it is the way back when a release
    that fills the disk must go."""
    if run.source_kind is SourceKind.ROLLBACK:
        return
    floor = Floor.of(run.settings)
    readings = await asyncio.gather(*(_reading(target) for target in run.targets))
    for target, file_systems in zip(run.targets, readings, strict=True):
        found = under_floor(file_systems, floor)
        if found is not None:
            raise Conflict(refusal(target.name, found, floor))


async def _reading(target: Target) -> list[FileSystemUsage]:
    """The agent's answer now; nothing when it cannot say (unreachable, or an agent too old
    to have the route): the deployment then meets that itself."""
    try:
        return await asyncio.wait_for(target.client.disk(), CHECK_SECONDS)
    except (AgentError, httpx.HTTPError, OSError, TimeoutError) as exc:
        log.warning("disk of server %s not checked before deploying: %s", target.name, exc)
        return []
