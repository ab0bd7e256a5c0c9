"""Runs deployments as tasks of the API process and takes over those a dead process left."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import process
from dockyard.core import agents
from dockyard.core.platform import Platform
from dockyard.deploy import engine, plan
from dockyard.deploy.events import EventLog
from dockyard.deploy.run import Run, Target
from dockyard.models.deploys import Effective
from dockyard.models.enums import ACTIVE_STATUSES
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Deployment, Project, Server, Service, Workspace

log = logging.getLogger("dockyard.deploy")
AGENT_TIMEOUT = 900.0


@dataclass(frozen=True)
class Owner:
    """The process running a deployment; another process takes over only if it is gone."""

    host: str
    pid: int
    nonce: str

    @classmethod
    def of_this_process(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(8))

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "nonce": self.nonce}

    def orphaned(self, record: dict[str, Any]) -> bool:
        """Whether `record` names a process of this host that no longer runs it."""
        if record.get("host") != self.host or record.get("nonce") == self.nonce:
            return False
        pid = int(record.get("pid", 0))
        return pid == self.pid or pid <= 0 or not process.is_running(pid)


class DeployRunner:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.events = EventLog(platform.db)
        self.owner = Owner.of_this_process()
        self._tasks: set[asyncio.Task[None]] = set()

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

    async def _run(self, deployment_id: str, how: Any) -> None:
        try:
            run = await self.load(deployment_id)
        except Exception:
            log.exception("cannot load deployment %s", deployment_id)
            return
        try:
            await how(run)
        finally:
            await run.close()

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
                if self.owner.orphaned(row.progress.get("owner", {})):
                    row.progress = {**row.progress, "owner": self.owner.as_dict()}
                    taken.append(row.id)
            return taken

        return await self.p.db.write(tx)

    async def load(self, deployment_id: str) -> Run:
        row, names, servers = await self.p.db.read(lambda s: _load(s, deployment_id))
        secret = await agents.secret_for(self.p, row.workspace_id)
        targets = [Target(server.id, server.name, agents.client_for(server, secret, AGENT_TIMEOUT))
                   for server in servers]
        config = row.config
        return Run(
            p=self.p, log=self.events, deployment_id=row.id, workspace=names[0],
            project=names[1], service=names[2], site=config["site"], hosts=config["hosts"],
            params=Effective.model_validate(config["params"]),
            env=json.loads(self.p.box.decrypt(row.env_ciphertext)),
            image=plan.parse_image(row.image_tag or ""), source_kind=row.source_kind,
            source=row.source, targets=targets, phase=row.phase, progress=dict(row.progress),
        )


async def _load(s: AsyncSession, deployment_id: str
                ) -> tuple[Deployment, tuple[str, str, str], list[ServerPublic]]:
    row = await s.get_one(Deployment, deployment_id)
    service = await s.get_one(Service, row.service_id)
    project = await s.get_one(Project, service.project_id)
    workspace = await s.get_one(Workspace, row.workspace_id)
    ids = row.config["servers"]
    found = {x.id: x for x in await s.scalars(select(Server).where(Server.id.in_(ids)))}
    servers = [ServerPublic.model_validate(found[i]) for i in ids if i in found]
    return row, (workspace.name, project.name, service.name), servers
