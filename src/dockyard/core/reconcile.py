"""The reconciler: each server runs exactly what the control plane says. A periodic job of
the worker reads every server's agent (its containers and sites), compares them with each
service's live release and deployments in flight (deploy/converge.py decides), applies the
corrections through the agent, records each as a server event, and keeps what is still
different as the server's drift. A server whose agent does not answer is tried again at
every tick, so it is reconciled within seconds of coming back."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient, unless_gone
from dockyard.core import agents, certify, fleet, logcollect, stateful
from dockyard.core.authz import Actor, Permission
from dockyard.core.deploy_targets import hosts_of
from dockyard.core.lookup import server_by_id
from dockyard.core.platform import Platform
from dockyard.deploy import converge
from dockyard.deploy.plan import DEPLOYMENT_LABEL, site_name
from dockyard.kernel.audit import UNAUDITED
from dockyard.kernel.queue import JobContext, Tasks
from dockyard.models.base import utcnow
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.enums import ACTIVE_STATUSES, DeploymentStatus, ServiceKind
from dockyard.models.reconcile import Drift, ServerEventPublic
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Deployment, Project, Server, ServerEvent, Service

log = logging.getLogger("dockyard.reconcile")
RECONCILE_TASK = "servers.reconcile"
AGENT_FAILURES = (AgentError, httpx.HTTPError, OSError)
MAX_ROUNDS = 2  # re-created web containers get their site in the second round
CONCURRENCY = 8  # servers reconciled at once
STOP_SECONDS = 10  # a stray is stopped as a deploy stops an old release, then removed


@dataclass(frozen=True)
class Event:
    kind: str
    message: str


async def reconcile_server(p: Platform, server: ServerPublic,
                           client_of: fleet.ClientFactory) -> list[Event]:
    """One pass on one server, each round recorded as it ends; raises what the agent raises
    when it cannot be read."""
    events: list[Event] = []
    async with client_of(server) as client:
        for _ in range(MAX_ROUNDS):
            decision = await _decide(p, server, client)
            applied, failed = await _apply(client, decision.corrections, _grace(p, server))
            done = [Event(c.past, c.message) for c in applied] + _new_failures(server, failed)
            drift = [*decision.drift, *failed]
            await _record(p, server.id, done, drift)
            events += done
            server = server.model_copy(update={"drift": drift})
            if not any(isinstance(c, converge.RecreateMissing) for c in applied):
                break
        kept = [Event("restored", m) for m in await stateful.keep_stateful(p, server, client)]
        kept += [Event("certificate", m)
                 for m in await certify.keep_certificates(p, server, client)]
    if kept:
        await _record(p, server.id, kept, server.drift)
    return events + kept


def _new_failures(server: ServerPublic, failed: list[Drift]) -> list[Event]:
    """An event for each failure not already in the drift (not one every pass)."""
    known = {(d.subject, d.message) for d in server.drift}
    return [Event("failed", d.message) for d in failed if (d.subject, d.message) not in known]


async def _decide(p: Platform, server: ServerPublic, client: NodeAgentClient
                  ) -> converge.Decision:
    """What the agent runs is read before the database: a deployment that starts meanwhile
    is then seen in flight, and its service left alone."""
    found = converge.Found(tuple(await client.containers()), tuple(await client.sites()))
    labels = {c.labels.get(DEPLOYMENT_LABEL, "") for c in found.containers}
    wanted = await p.db.read(lambda s: _wanted(p, s, server, labels))
    return converge.decide(wanted, found, _grace(p, server))


def _grace(p: Platform, server: ServerPublic) -> converge.Grace:
    period = timedelta(seconds=p.settings.reconcile_grace_seconds)
    return converge.Grace(utcnow(), period, {d.subject: d.since for d in server.drift})


async def _wanted(p: Platform, s: AsyncSession, server: ServerPublic, labels: set[str]
                  ) -> converge.Wanted:
    query = (select(Service, Project.name).join(Project)
             .where(Service.workspace_id == server.workspace_id,
                    Service.kind == ServiceKind.APP).order_by(Project.name, Service.name))
    services = [await _service(p, s, service, project)
                for service, project in await s.execute(query)]
    found = await s.execute(select(Deployment.id, Deployment.status)
                            .where(Deployment.id.in_(labels)))
    return converge.Wanted(server.id, tuple(services), {id_: st for id_, st in found})


async def _service(p: Platform, s: AsyncSession, service: Service, project: str
                   ) -> converge.ServiceWanted:
    query = (select(Deployment).where(Deployment.service_id == service.id)
             .order_by(Deployment.finished_at.desc()))
    rows = list(await s.scalars(query))
    flying = tuple(r.id for r in rows if r.status in ACTIVE_STATUSES)
    succeeded = [r for r in rows if r.status is DeploymentStatus.SUCCEEDED]
    return converge.ServiceWanted(f"{project}/{service.name}", site_name(project, service.name),
                                  tuple(_releases(p, succeeded)), flying,
                                  tuple(await hosts_of(p, s, service, project)))


def _releases(p: Platform, rows: list[Deployment]) -> list[converge.Release]:
    """The newest releases down to the newest full one (restarts of one type before it)."""
    releases: list[converge.Release] = []
    for row in rows:
        plan = DeploymentPlan.from_row(row)
        releases.append(converge.Release(row.id, plan,
                                         json.loads(p.box.decrypt(row.env_ciphertext))))
        if plan.only is None:
            break
    return releases


async def _apply(client: NodeAgentClient, corrections: tuple[converge.Correction, ...],
                 grace: converge.Grace) -> tuple[list[converge.Correction], list[Drift]]:
    """Each correction through the agent: those done, and drift for those that failed."""
    applied: list[converge.Correction] = []
    failed: list[Drift] = []
    for correction in corrections:
        try:
            await _correct(client, correction)
        except AGENT_FAILURES as exc:
            detail = exc.detail if isinstance(exc, AgentError) else str(exc) or repr(exc)
            failed.append(Drift(subject=correction.subject, since=grace.since(correction.subject),
                                message=correction.failure(detail)))
            continue
        applied.append(correction)
    return applied, failed


async def _correct(client: NodeAgentClient, correction: converge.Correction) -> None:
    if isinstance(correction, converge.RecreateMissing) and correction.spec:
        await client.run_container(correction.spec)
    elif isinstance(correction, converge.RestoreSite) and correction.site:
        await client.apply_site(correction.site)
    elif isinstance(correction, converge.RemoveSite):
        await unless_gone(client.remove_site(correction.subject))
    elif isinstance(correction, converge.RemoveStray):
        await unless_gone(client.stop_container(correction.subject, STOP_SECONDS))
        await unless_gone(client.remove_container(correction.subject))



async def _record(p: Platform, server_id: str, events: list[Event], drift: list[Drift]
                  ) -> None:
    """The events (what was corrected), and the drift left, when it changed: an observation,
    so it leaves no history row."""
    async def tx(s: AsyncSession) -> None:
        server = await s.get(Server, server_id)
        if server is None:
            return
        s.add_all(ServerEvent(server_id=server_id, kind=e.kind, message=e.message)
                  for e in events)
        kept = [d.model_dump(mode="json") for d in drift]
        if server.drift != kept:
            server.drift = kept

    await p.db.write(tx, info=UNAUDITED)


async def reconcile_due(p: Platform, due: dict[str, float],
                        client_of: fleet.ClientFactory | None = None,
                        clock: Callable[[], float] = time.monotonic) -> None:
    """A pass on every server whose time has come (`due`: when, by server id), a few at
    once; a server whose agent did not answer is due again at once."""
    client_of = client_of or agents.client_factory(await agents.agent_secrets(p))
    servers = [s for s in await fleet.pollable_servers(p) if due.get(s.id, 0) <= clock()]
    due.update((s.id, math.inf) for s in servers)  # a pass still running is not started again
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(server: ServerPublic) -> None:
        async with gate:
            due[server.id] = await _pass_then_next(p, server, client_of, clock)

    await asyncio.gather(*(one(s) for s in servers))


async def _pass_then_next(p: Platform, server: ServerPublic, client_of: fleet.ClientFactory,
                          clock: Callable[[], float]) -> float:
    """One pass; when the server is due next."""
    try:
        await reconcile_server(p, server, client_of)
    except AGENT_FAILURES as exc:
        log.warning("server %s not reconciled this time: %s", server.name, exc)
        return 0
    except Exception:  # a fault here must not stop the other servers' passes
        log.exception("reconciling server %s failed", server.name)
    return clock() + p.settings.reconcile_seconds


async def server_events(p: Platform, actor: Actor, server_id: str, limit: int
                        ) -> list[ServerEventPublic]:
    """The server's last `limit` events, oldest first."""
    async def tx(s: AsyncSession) -> list[ServerEventPublic]:
        actor.require(Permission.READ)
        server = await server_by_id(s, actor, server_id)
        query = (select(ServerEvent).where(ServerEvent.server_id == server.id)
                 .order_by(ServerEvent.id.desc()).limit(limit))
        rows = list(await s.scalars(query))
        return [ServerEventPublic.model_validate(row) for row in reversed(rows)]

    return await p.db.read(tx)


TASKS = Tasks()
TASKS.every(RECONCILE_TASK, "* * * * * */5", RECONCILE_TASK)


@TASKS.task(RECONCILE_TASK, max_attempts=1, coalesce=True)
async def reconcile_job(context: JobContext, payload: dict[str, Any]) -> None:
    due: dict[str, float] = context.resources.setdefault("reconcile_due", {})
    await reconcile_due(logcollect._platform(context), due)
