"""The agent's desired state on disk: the sites, containers and firewall rules it owns,
restored at boot."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from dockyard.agent.models import ContainerSpec, FirewallRule, Site


class DesiredState(BaseModel):
    sites: dict[str, Site] = Field(default_factory=dict)
    containers: dict[str, ContainerSpec] = Field(default_factory=dict)
    firewall: dict[str, FirewallRule] = Field(default_factory=dict)


class StateFile:
    """Loads once and saves atomically on every change, so a crash leaves the old or new file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> DesiredState:
        if not self.path.exists():
            return DesiredState()
        return DesiredState.model_validate_json(self.path.read_text())

    def save(self, state: DesiredState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(state.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
