"""Upgrade servers' agents in place to this control plane's agent code (admins), one server at
a time: a server whose agent runs the expected version already is skipped; otherwise the
bundle is uploaded, and the agent must answer with the new version before the next server
is touched. The first failure stops the run (the other servers keep their working agent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent import release
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.release import Bundle
from dockyard.core import agents
from dockyard.core.authz import Actor, Permission
from dockyard.core.fleet import ClientFactory
from dockyard.core.platform import Platform
from dockyard.kernel.errors import NotFound
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Server, ServerEvent
from dockyard.models.upgrades import BundleInfo, UpgradeEvent, UpgradeRequest
from dockyard.models.upgrades import UpgradeStep as Step

FINAL = {Step.UPGRADED, Step.SKIPPED, Step.REFUSED}
EVENT_KIND = "agent-upgrade"


@dataclass(frozen=True)
class Patience:
    """How long an upgraded agent may take to answer with its new version (the node's
    watchdog rolls back after 60 s by default), and how often it is asked."""

    seconds: float = 150.0
    poll_seconds: float = 0.5


@dataclass(frozen=True)
class Run:
    p: Platform
    actor: Actor
    bundle: Bundle
    client_of: ClientFactory
    patience: Patience


def bundle_info(actor: Actor) -> BundleInfo:
    actor.require(Permission.READ)
    bundle = release.current_bundle()
    return BundleInfo(version=bundle.version, sha256=bundle.sha256, size=bundle.size)


def bundle_bytes(sha256: str) -> bytes:
    """The current bundle, when asked for by its digest (servers fetch it at boot)."""
    bundle = release.current_bundle()
    if sha256 != bundle.sha256:
        raise NotFound("agent bundle", sha256)
    return bundle.data


async def upgrade_servers(p: Platform, actor: Actor, request: UpgradeRequest,
                          client_of: ClientFactory | None = None,
                          patience: Patience = Patience(), bundle: Bundle | None = None
                          ) -> AsyncIterator[UpgradeEvent]:
    """Check the request (refusals raise here, before any event), then the events of the
    upgrade to `bundle` (this control plane's own by default), server by server, until
    `done`."""
    actor.require(Permission.MANAGE_SERVERS)
    servers = await _targets(p, actor, request.server)
    if client_of is None:
        secret = await agents.secret_for(p, actor.workspace_id)
        client_of = agents.client_factory({actor.workspace_id: secret})
    run = Run(p, actor, bundle or release.current_bundle(), client_of, patience)
    return _all(run, servers)


async def _targets(p: Platform, actor: Actor, name: str | None) -> list[ServerPublic]:
    async def tx(s: AsyncSession) -> list[ServerPublic]:
        query = select(Server).where(Server.workspace_id == actor.workspace_id)
        query = query.where(Server.name == name) if name else query
        return [ServerPublic.model_validate(row)
                for row in await s.scalars(query.order_by(Server.name))]

    found = await p.db.read(tx)
    if name and not found:
        raise NotFound("server", name)
    return found


async def _all(run: Run, servers: list[ServerPublic]) -> AsyncIterator[UpgradeEvent]:
    done = 0
    for server in servers:
        last = None
        async for last in _one(run, server):
            yield last
        if last is None or last.step not in FINAL:
            yield _event(Step.DONE, None, run, f"stopped at {server.name}: {done} of "
                         f"{len(servers)} server(s) done, the others left as they are")
            return
        done += 1
    yield _event(Step.DONE, None, run, f"{done} server(s) run agent {run.bundle.version}")


def _event(step: Step, server: ServerPublic | None, run: Run, message: str) -> UpgradeEvent:
    return UpgradeEvent(step=step, server=server.name if server else None,
                        version=run.bundle.version, message=message)


async def _one(run: Run, server: ServerPublic) -> AsyncIterator[UpgradeEvent]:
    if server.agent_version == run.bundle.version:
        yield _event(Step.SKIPPED, server, run, f"runs agent {server.agent_version} already")
        return
    yield _event(Step.UPLOADING, server, run,
                 f"from {server.agent_version or 'unknown'} to {run.bundle.version}")
    refusal = await _upload(run, server)
    if refusal is not None:
        await _record(run, server, refusal, None)
        yield refusal
        return
    yield _event(Step.RESTARTING, server, run, "release switched; the agent restarts in place")
    outcome, answered = await _wait(run, server)
    await _record(run, server, outcome, answered)
    yield outcome


async def _upload(run: Run, server: ServerPublic) -> UpgradeEvent | None:
    """None once the agent took the bundle; otherwise the event saying why not."""
    try:
        async with run.client_of(server) as client:
            await client.upgrade_agent(run.bundle)
    except AgentError as exc:
        step = Step.REFUSED if exc.status_code == 409 else Step.FAILED
        return _event(step, server, run, exc.detail)
    except httpx.HTTPError as exc:
        return _event(Step.FAILED, server, run,
                      f"agent unreachable: {str(exc) or type(exc).__name__}")
    return None


async def _version(client: NodeAgentClient) -> str | None:
    try:
        return (await client.info()).agent_version
    except (AgentError, httpx.HTTPError):
        return None


async def _wait(run: Run, server: ServerPublic) -> tuple[UpgradeEvent, str | None]:
    """Upgraded once it answers the new version; rolled back when, after going away, it
    answers another one (its watchdog put the old release back); failed otherwise. With
    the version it answered last."""
    deadline, went_away, seen = time.monotonic() + run.patience.seconds, False, None
    async with run.client_of(server) as client:
        while time.monotonic() < deadline:
            seen = await _version(client)
            if seen == run.bundle.version:
                return _event(Step.UPGRADED, server, run, f"agent {seen} answers"), seen
            if seen is not None and went_away:
                return _event(Step.ROLLED_BACK, server, run, f"agent {seen} answers again: "
                              "the new release did not start, so its watchdog put the old "
                              "one back"), seen
            went_away = went_away or seen is None
            await asyncio.sleep(run.patience.poll_seconds)
    why = (f"still answers as {seen}: it did not restart" if seen else "did not answer")
    return _event(Step.FAILED, server, run, f"agent {why} within {run.patience.seconds:g} s "
                  "of its upgrade"), seen


async def _record(run: Run, server: ServerPublic, outcome: UpgradeEvent,
                  answered: str | None) -> None:
    """The version the agent answered with, and what happened, on the server's row."""

    async def tx(s: AsyncSession) -> None:
        row = await s.get_one(Server, server.id)
        if answered is not None:
            row.agent_version = answered
        s.add(ServerEvent(server_id=server.id, kind=EVENT_KIND,
                          message=f"{outcome.step.value}: {outcome.message}"))

    await run.p.db.write(tx, info=run.actor.audit_info)
