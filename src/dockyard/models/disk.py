"""A cleaning of a node's disk, as its agent did it and reports it (kept in the agent's memory,
turned into a server event `disk` by the control plane, answered by `POST .../prune`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dockyard.models.app_metrics import FileSystemUsage

Trigger = Literal["threshold", "request"]


def used_fraction(file_systems: list[FileSystemUsage]) -> float:
    """Of the file systems given, the share the fullest one uses (0 when none is known)."""
    return max((1 - found.free_fraction for found in file_systems), default=0.0)


def docker_free_bytes(file_systems: list[FileSystemUsage]) -> int:
    """Free space where Docker keeps its data: what a cleaning frees (0 when unknown)."""
    return sum(found.free_bytes for found in file_systems if "docker" in found.roles)


class DiskCleanup(BaseModel):
    """What one cleaning removed: `trigger` says whether the disk passed the agent's
    threshold or someone asked (`dockyard servers prune`, a deploy meeting the disk floor).
    `bytes_freed` is the free space gained on Docker's file system."""

    model_config = ConfigDict(frozen=True)  # fields a newer agent adds are ignored

    id: str
    at: float = Field(description="Epoch seconds, when the cleaning ended")
    trigger: Trigger
    used_before: float = Field(description="Of the fullest file system, 0..1")
    used_after: float
    release_tags_removed: list[str] = []
    dangling_images_removed: int = 0
    containers_removed: list[str] = []
    bytes_freed: int = 0

    def summary(self) -> str:
        """One sentence, as the server event and the CLI tell it."""
        asked = "cleaned on request" if self.trigger == "request" else "cleaned by the agent"
        return (f"disk {self.used_before:.0%} used, {asked}: removed "
                f"{len(self.release_tags_removed)} old release image tags, "
                f"{self.dangling_images_removed} dangling images and "
                f"{len(self.containers_removed)} stopped containers, freeing about "
                f"{self.bytes_freed / 1e6:.0f} MB ({self.used_after:.0%} used now)")
