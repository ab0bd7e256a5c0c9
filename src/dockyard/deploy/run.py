"""One deployment in flight: what it deploys, where, and its persisted progress."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.core.platform import Platform
from dockyard.deploy.events import EventLog
from dockyard.kernel.errors import DockyardError
from dockyard.models.deploys import Effective
from dockyard.models.enums import SourceKind
from dockyard.models.tables import Deployment


class DeployFailed(DockyardError):
    """The deployment cannot go on; the message is the reason shown to the user."""


def describe(error: BaseException) -> str:
    """A failure as a person reads it: ours, the agent's answer, or an unreachable agent."""
    if isinstance(error, DockyardError):
        return error.message
    if isinstance(error, AgentError):
        return error.detail
    if isinstance(error, httpx.TransportError):
        return f"the node agent could not be reached ({type(error).__name__}: {error})"
    return f"internal error: {error!r}"


@dataclass
class Target:
    id: str
    name: str
    client: NodeAgentClient


@dataclass
class Run:
    p: Platform
    log: EventLog
    deployment_id: str
    workspace: str
    project: str
    service: str
    site: str
    hosts: list[str]
    params: Effective
    env: dict[str, str]
    image: ImageRef
    source_kind: SourceKind
    source: dict[str, Any]
    targets: list[Target]
    phase: str = ""
    progress: dict[str, Any] = field(default_factory=dict)
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def emit(self, kind: str, message: str, **data: Any) -> None:
        await self.log.append(self.deployment_id, kind, message, **data)

    async def step(self, target: Target, step: str, state: str, message: str) -> None:
        servers = self.progress.setdefault("servers", {})
        servers[target.id] = {**servers.get(target.id, {}), "step": step, "state": state}
        await self.save()
        await self.emit("step", message, server=target.name, step=step, state=state)

    async def enter(self, phase: str, message: str) -> None:
        self.phase = phase
        await self.save()
        await self.emit("phase", message, phase=phase)

    async def save(self) -> None:
        """Persist the phase and each server's step."""
        async with self._lock:
            progress = dict(self.progress)

            async def tx(s: Any) -> None:
                row = await s.get_one(Deployment, self.deployment_id)
                row.phase, row.progress = self.phase, progress

            await self.p.db.write(tx)

    async def close(self) -> None:
        for target in self.targets:
            await target.client.aclose()
