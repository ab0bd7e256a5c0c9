"""Runs deployments as tasks of the API process and takes over those a dead process left."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import process
from dockyard.deploy import engine, sources
from dockyard.deploy.events import EventLog
from dockyard.deploy.run import Connect, Run, Target
from dockyard.kernel.audit import UNAUDITED
from dockyard.kernel.db import Database
from dockyard.kernel.security import SecretBox
from dockyard.kernel.settings import Settings
from dockyard.models.deployment_plan import DeploymentPlan, Owner, Phase, Progress
from dockyard.models.enums import ACTIVE_STATUSES
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Deployment, Project, Server, Service, Workspace

log = logging.getLogger("dockyard.deploy")


def orphaned(recorded: Owner | None, me: Owner) -> bool:
    """Whether `recorded` is a process of this host, other than `me`, that no longer runs."""
    if recorded is None or recorded.host != me.host or recorded.nonce == me.nonce:
        return False
    pid = recorded.pid
    return pid == me.pid or pid <= 0 or not process.is_running(pid)


AfterEnd = Callable[[str], Awaitable[None]]


class DeployRunner:
    """`connect` gives the engine a client of a server's agent. `after_end`: callbacks given
    the id of each deployment this runner carried to its end (not of one cancelled)."""

    def __init__(self, db: Database, settings: Settings, box: SecretBox, connect: Connect
                 ) -> None:
        self.db, self.settings, self.box, self.connect = db, settings, box, connect
        self.events = EventLog(db)
        self.owner = Owner.of_this_process()
        self._tasks: set[asyncio.Task[None]] = set()
        self.after_end: list[AfterEnd] = []

    def start(self, deployment_id: str) -> None:
        self._spawn(self._run(deployment_id, engine.execute))

    async def recover(self) -> list[str]:
        """Take over the active deployments whose process died; returns their ids."""
        taken = await self._claim_orphans()
        for deployment_id in taken:
            self._spawn(self._run(deployment_id, engine.recover))
        return taken

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, deployment_id: str, how: Callable[[Run], Awaitable[None]]) -> None:
        try:
            run = await self.load(deployment_id)
        except Exception:
            log.exception("cannot load deployment %s", deployment_id)
            return
        try:
            await how(run)
        finally:
            await run.close()
        await self._ended(deployment_id)

    async def _ended(self, deployment_id: str) -> None:
        for callback in self.after_end:
            try:
                await callback(deployment_id)
            except Exception:
                log.exception("after the end of deployment %s", deployment_id)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def shutdown(self, wait_seconds: float) -> None:
        """Let running deployments finish for a while; the rest are taken over at the next
        start (their state is persisted at every step)."""
        try:
            await asyncio.wait_for(self.wait_idle(), wait_seconds)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim_orphans(self) -> list[str]:
        async def tx(s: AsyncSession) -> list[str]:
            query = select(Deployment).where(Deployment.status.in_(ACTIVE_STATUSES))
            taken = []
            for row in await s.scalars(query):
                progress = _progress_of(row)
                if progress is not None and orphaned(progress.owner, self.owner):
                    row.progress = progress.with_owner(self.owner).to_column()
                    taken.append(row.id)
            return taken

        return await self.db.write(tx, info=UNAUDITED)

    async def load(self, deployment_id: str) -> Run:
        row, names, servers = await self.db.read(lambda s: _load(s, deployment_id))
        targets: list[Target] = []
        try:
            for server in servers:
                targets.append(Target(server.id, server.name, await self.connect(server)))
        except BaseException:
            for target in targets:
                await target.client.aclose()
            raise
        plan = DeploymentPlan.from_row(row)
        credential = await self.db.read(
            lambda s: sources.link_credential(s, self.box, plan.source))
        run = Run(
            db=self.db, settings=self.settings, log=self.events, deployment_id=row.id,
            workspace=names[0], project=names[1], service=names[2], plan=plan,
            env=json.loads(self.box.decrypt(row.env_ciphertext)), targets=targets,
            git_credential=credential,
            phase=Phase(row.phase), progress=Progress.from_column(row.progress),
        )
        run.wait_for_agents()
        return run


def _progress_of(row: Deployment) -> Progress | None:
    """The row's progress; None (never taken over) if it cannot be read, which is logged."""
    try:
        return Progress.from_column(row.progress)
    except ValidationError as exc:
        log.error("deployment %s has unreadable progress %r: %s", row.id, row.progress, exc)
        return None


async def _load(s: AsyncSession, deployment_id: str
                ) -> tuple[Deployment, tuple[str, str, str], list[ServerPublic]]:
    row = await s.get_one(Deployment, deployment_id)
    service = await s.get_one(Service, row.service_id)
    project = await s.get_one(Project, service.project_id)
    workspace = await s.get_one(Workspace, row.workspace_id)
    ids = DeploymentPlan.from_row(row).servers
    found = {x.id: x for x in await s.scalars(select(Server).where(Server.id.in_(ids)))}
    servers = [ServerPublic.model_validate(found[i]) for i in ids if i in found]
    return row, (workspace.name, project.name, service.name), servers
