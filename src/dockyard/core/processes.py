"""`ps`, `restart` and `run` of a service: what runs on its servers, a rolling restart of
its live release, and one-off commands in new containers of that release."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import OneOffRun, ProcessState
from dockyard.core import agents, deployments
from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.deploy import injection
from dockyard.deploy import plan as deploy_plan
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import DockyardError, InvalidInput
from dockyard.models.deployment_plan import DeploymentPlan
from dockyard.models.deploys import DeployRequest, ReleaseSource
from dockyard.models.processes import (
    ProcessListing,
    ProcessPublic,
    RunRequest,
    ScaleRequest,
    ServiceDrift,
    UnreachableServer,
)
from dockyard.models.schemas import ServerPublic
from dockyard.models.tables import Placement, Server

PS_TIMEOUT = 10.0
AGENT_FAILURES = (AgentError, httpx.HTTPError, httpx.InvalidURL)


@dataclass(frozen=True)
class _Placed:
    site: str
    servers: list[ServerPublic]


async def list_processes(p: Platform, actor: Actor, project: str, service: str
                         ) -> ProcessListing:
    """Every container of the service on every server it runs on; a server that does not
    answer is listed as unreachable, the others still are."""
    placed = await p.db.read(lambda s: _placed(s, actor, project, service))
    secret = await agents.secret_for(p, actor.workspace_id)
    answers = await asyncio.gather(*(_processes_on(x, secret, placed.site)
                                     for x in placed.servers))
    found = [item for answer in answers if isinstance(answer, list) for item in answer]
    down = [answer for answer in answers if isinstance(answer, UnreachableServer)]
    return ProcessListing(processes=found, unreachable=down, drift=_drift_of(placed))


def _drift_of(placed: _Placed) -> list[ServiceDrift]:
    """The servers' drift that concerns this service: its containers and its site."""
    return [ServiceDrift(server=server.name, subject=d.subject, message=d.message,
                         since=d.since)
            for server in placed.servers for d in server.drift
            if d.subject == placed.site or deploy_plan.is_container_of(placed.site, d.subject)]


async def _placed(s: AsyncSession, actor: Actor, project: str, service: str) -> _Placed:
    actor.require(Permission.READ)
    found = await service_named(s, actor, project, service)
    placed = select(Placement.server_id).where(Placement.service_id == found.id)
    servers = await s.scalars(select(Server).where(Server.id.in_(placed)).order_by(Server.name))
    return _Placed(deploy_plan.site_name(project, service),
                   [ServerPublic.model_validate(x) for x in servers])


async def _processes_on(server: ServerPublic, secret: str, site: str
                        ) -> list[ProcessPublic] | UnreachableServer:
    try:
        async with agents.client_for(server, secret, PS_TIMEOUT) as client:
            states = await client.processes(site)
    except AGENT_FAILURES as exc:
        return UnreachableServer(server=server.name, error=str(exc) or type(exc).__name__)
    return [_public(server.name, state) for state in states]


def _public(server: str, state: ProcessState) -> ProcessPublic:
    kind, replica = deploy_plan.process_of(state.labels)
    return ProcessPublic(
        server=server, type=kind, replica=replica,
        release=state.labels.get(deploy_plan.DEPLOYMENT_LABEL), name=state.name,
        state=state.state, started_at=state.started_at, restarts=state.restart_count,
        memory_bytes=state.memory_bytes, exit_code=state.exit_code,
        oom_killed=state.oom_killed)


async def start_restart(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                        service: str, kind: str | None = None) -> str:
    """A rolling restart: a new zero-downtime rollout of the live release (with today's
    variables), of every process type or of `kind` alone; no release command."""
    if kind is not None:
        known = await p.db.read(lambda s: _live_types(s, actor, project, service))
        _check_types([kind], known)
    return await deployments.start_deploy(p, runner, actor, _rerun(project, service),
                                          deployments.Rerun(only=kind, run_release=False))


async def start_scale(p: Platform, runner: DeployRunner, actor: Actor, project: str,
                      service: str, body: ScaleRequest) -> str:
    """Save the service's replicas and roll the live release out with them (zero downtime:
    the new set starts and passes its health checks before the old one drains)."""
    known, current = await p.db.read(lambda s: _scale_of(s, actor, project, service))
    _check_types(list(body.scale), known)
    scale = {**current, **body.scale}
    if scale.get("web", 1) < 1:
        raise InvalidInput("web needs at least 1 replica: it serves the service's traffic")
    return await deployments.start_deploy(p, runner, actor, _rerun(project, service),
                                          deployments.Rerun(run_release=False, scale=scale))


def _rerun(project: str, service: str) -> DeployRequest:
    return DeployRequest(project=project, service=service, source=ReleaseSource(kind="release"))


def _check_types(wanted: list[str], known: list[str]) -> None:
    unknown = [kind for kind in wanted if kind not in known]
    if unknown:
        raise InvalidInput(f"process type {unknown[0]!r} is not in the live release (it has "
                           f"{', '.join(known)}); add it to the Procfile and deploy")


async def _live_types(s: AsyncSession, actor: Actor, project: str, service: str) -> list[str]:
    return (await _scale_of(s, actor, project, service))[0]


async def _scale_of(s: AsyncSession, actor: Actor, project: str, service: str
                    ) -> tuple[list[str], dict[str, int]]:
    """The live release's process types, and the replicas the service is set to."""
    found = await service_named(s, actor, project, service)
    actor.require(Permission.WRITE)
    release = await deployments.live_release(s, found)
    scale: dict[str, int] = found.config.get("scale", {})
    return DeploymentPlan.from_row(release).processes.types(), scale


@dataclass(frozen=True)
class _OneOff:
    server: ServerPublic
    request: OneOffRun


class AgentUnavailable(DockyardError):
    status_code = 502


@dataclass(frozen=True)
class RunEvent:
    """`started` {container, server}, `output` {text}, then `exit` {exit_code, timed_out}
    or `error` {message}; `heartbeat` while the command is silent."""

    kind: str
    data: dict[str, object]


async def run_command(p: Platform, actor: Actor, project: str, service: str,
                      body: RunRequest) -> AsyncIterator[RunEvent]:
    """Start `body.command` in a new container of the live release, with the release's
    environment, on one of its servers, and follow it. Fails before anything starts when
    it cannot start."""
    job = await p.db.read(lambda s: _one_off(p, s, actor, project, service, body))
    secret = await agents.secret_for(p, actor.workspace_id)
    client = agents.client_for(job.server, secret, float(job.request.timeout_seconds) + 60)
    lines = _lines_of(client, job.request)
    try:
        first = await anext(lines)
    except AgentError as exc:
        raise (InvalidInput if exc.status_code < 500 else AgentUnavailable)(
            f"server {job.server.name} could not start the command: {exc.detail}") from exc
    except AGENT_FAILURES as exc:
        raise AgentUnavailable(f"server {job.server.name} did not answer: {exc}") from exc
    started = RunEvent("started", {**first, "server": job.server.name})
    return _events(started, lines, job.server.name)


async def _lines_of(client: NodeAgentClient, request: OneOffRun
                    ) -> AsyncIterator[dict[str, object]]:
    async with client:
        async for line in client.run_one_off(request):
            yield line


async def _events(started: RunEvent, lines: AsyncIterator[dict[str, object]], server: str
                  ) -> AsyncIterator[RunEvent]:
    yield started
    try:
        async for line in lines:
            if "output" in line:
                yield RunEvent("output", {"text": line["output"]})
            elif "exit_code" in line:
                yield RunEvent("exit", line)
            elif "heartbeat" in line:  # passed on, so a client that left is noticed
                yield RunEvent("heartbeat", {})
    except AGENT_FAILURES as exc:
        yield RunEvent("error", {"message": f"lost the command on server {server}: {exc}"})


async def _one_off(p: Platform, s: AsyncSession, actor: Actor, project: str, service: str,
                   body: RunRequest) -> _OneOff:
    found = await service_named(s, actor, project, service)
    actor.require(Permission.WRITE)
    release = await deployments.live_release(s, found)
    plan = DeploymentPlan.from_row(release)
    env = deploy_plan.release_env(json.loads(p.box.decrypt(release.env_ciphertext)),
                                  plan.params, release.id, f"{project}/{service}")
    server = await _run_server(s, plan, body.server)
    request = OneOffRun(service=plan.site, image=deploy_plan.parse_image(plan.image),
                        command=body.command, env=env,
                        labels={deploy_plan.DEPLOYMENT_LABEL: release.id},
                        timeout_seconds=_time_limit(p, body),
                        extra_hosts=injection.extra_hosts(plan.links, server.id))
    return _OneOff(server, request)


def _time_limit(p: Platform, body: RunRequest) -> int:
    limit = p.settings.run_timeout_seconds
    if body.timeout_seconds is not None and body.timeout_seconds > limit:
        raise InvalidInput(f"timeout_seconds may be at most {limit} (the "
                           "DOCKYARD_RUN_TIMEOUT_SECONDS setting)")
    return body.timeout_seconds or limit


async def _run_server(s: AsyncSession, plan: DeploymentPlan, wanted: str | None
                      ) -> ServerPublic:
    """The named server, or the first the live release runs on; it must hold the release."""
    servers = {x.id: x for x in await s.scalars(select(Server).where(Server.id.in_(plan.servers)))}
    ordered = [servers[i] for i in plan.servers if i in servers]
    chosen = ordered if wanted is None else [x for x in ordered if wanted in (x.id, x.name)]
    if not chosen:
        names = ", ".join(x.name for x in ordered) or "none"
        raise InvalidInput(f"the live release does not run on server {wanted!r}; it runs on: "
                           f"{names}")
    return ServerPublic.model_validate(chosen[0])
