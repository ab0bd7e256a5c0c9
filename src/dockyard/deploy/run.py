"""One deployment in flight: its plan, its agents, and its persisted phase and progress."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.agent.patience import AgentAway, Patience, Waiting
from dockyard.deploy.events import EventLog
from dockyard.deploy.plan import parse_image
from dockyard.deploy.sources import GitCredential
from dockyard.kernel.audit import UNAUDITED
from dockyard.kernel.db import Database
from dockyard.kernel.errors import DockyardError
from dockyard.kernel.settings import Settings
from dockyard.models.deployment_plan import (
    DeploymentPlan,
    Origin,
    Phase,
    Processes,
    Progress,
    Step,
    StepState,
)
from dockyard.models.deploys import Effective
from dockyard.models.enums import SourceKind
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Deployment

Connect = Callable[[ServerPublic], Awaitable[NodeAgentClient]]
"""A client of a server's agent (the control plane builds it from the server's pinned
certificate and the workspace's agent secret)."""


class DeployFailed(DockyardError):
    """The deployment cannot go on; the message is the reason shown to the user."""


def describe(error: BaseException) -> str:
    """A failure as a person reads it: ours, the agent's answer, or an unreachable agent."""
    if isinstance(error, DockyardError):
        return error.message
    if isinstance(error, AgentError):
        return error.detail
    if isinstance(error, AgentAway):
        return f"the node agent did not come back: {error}"
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
    db: Database
    settings: Settings
    log: EventLog
    deployment_id: str
    workspace: str
    project: str
    service: str
    plan: DeploymentPlan
    env: dict[str, str]
    targets: list[Target]
    git_credential: GitCredential | None = None  # a repository link's, for the fetch only
    phase: Phase = Phase.START
    progress: Progress = field(default_factory=Progress)
    aborted: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def image(self) -> ImageRef:
        return parse_image(self.plan.image)

    @property
    def params(self) -> Effective:
        return self.plan.params

    @property
    def source(self) -> Origin:
        return self.plan.source

    @property
    def source_kind(self) -> SourceKind:
        return self.plan.source_kind

    @property
    def site(self) -> str:
        return self.plan.site

    @property
    def hosts(self) -> list[str]:
        return self.plan.hosts

    def wait_for_agents(self) -> None:
        """Calls to an agent that restarts are made again for `agent_wait_seconds`, and the
        deploy log says that it waits and for how much longer (0: not at all)."""
        if self.settings.agent_wait_seconds <= 0:
            return
        for target in self.targets:
            target.client.patience = Patience(self.settings.agent_wait_seconds,
                                              self._waiting(target))

    def _waiting(self, target: Target) -> Waiting:
        async def say(reason: str, left: float) -> None:
            step = self.progress.servers.get(target.id)
            during = f" during step {step.step.value}" if step else ""
            await self.emit("warning", f"waiting for the node agent of {target.name}{during} "
                            f"({reason}); giving up in {left:.0f} s", server=target.name)

        return say

    async def record_processes(self, processes: Processes) -> None:
        """The process types the build found, kept in the plan for this release's reruns."""
        self.plan = self.plan.model_copy(update={"processes": processes})
        config = self.plan.to_columns()["config"]

        async def tx(s: AsyncSession) -> None:
            (await s.get_one(Deployment, self.deployment_id)).config = config

        await self.db.write(tx, info=UNAUDITED)

    async def emit(self, kind: str, message: str, **data: Any) -> None:
        await self.log.append(self.deployment_id, kind, message, **data)

    async def step(self, target: Target, step: Step, state: StepState, message: str) -> None:
        self.progress = self.progress.with_step(target.id, step, state)
        await self.save()
        await self.emit("step", message, server=target.name, step=step.value, state=state.value)

    async def enter(self, phase: Phase, message: str) -> None:
        self.phase = phase
        await self.save()
        await self.emit("phase", message, phase=phase.value)

    async def save(self) -> None:
        """Persist the phase and each server's step."""
        async with self._lock:
            phase, progress = self.phase.value, self.progress.to_column()

            async def tx(s: AsyncSession) -> None:
                row = await s.get_one(Deployment, self.deployment_id)
                row.phase, row.progress = phase, progress

            await self.db.write(tx, info=UNAUDITED)

    async def close(self) -> None:
        for target in self.targets:
            await target.client.aclose()
