"""Starting deployments and rollbacks, and reading their history. The engine does the rest."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import NodeAgentClient
from dockyard.core import agents
from dockyard.core.authz import Actor, Permission
from dockyard.core.deploy_targets import effective_params, hosts_of, target_servers
from dockyard.core.lookup import project_named, service_named
from dockyard.core.platform import Platform
from dockyard.deploy import archives, injection, sources
from dockyard.deploy import plan as deploy_plan
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from dockyard.models.base import new_id, utcnow
from dockyard.models.deployment_plan import (
    DeploymentPlan,
    FromArchive,
    FromGit,
    FromRelease,
    Origin,
    Processes,
    Progress,
    ReleaseLink,
    origin_of,
)
from dockyard.models.deploys import (
    ArchiveCommit,
    DeploymentPublic,
    DeployRequest,
    DeployTarget,
    Effective,
    ReleaseSource,
    RollbackRequest,
)
from dockyard.models.enums import ACTIVE_STATUSES, DeploymentStatus, ServiceKind
from dockyard.models.schemas import AppRedeploy, ServerPublic
from dockyard.models.tables import Deployment, EnvVar, Project, Service, Workspace

AGENT_TIMEOUT = 900.0


def new_runner(p: Platform) -> DeployRunner:
    """The deploy engine of this process; it reaches each server's agent at its pinned
    certificate with the workspace's agent secret."""

    async def connect(server: ServerPublic) -> NodeAgentClient:
        secret = await agents.secret_for(p, server.workspace_id)
        return agents.client_for(server, secret, AGENT_TIMEOUT)

    return DeployRunner(p.db, p.settings, p.box, connect)


@dataclass(frozen=True)
class Rerun:
    """How a rerun of the live release differs from a deploy: a restart of one process type
    (`only`), without the release command, saving the service's new `scale`."""

    only: str | None = None
    run_release: bool = True
    scale: dict[str, int] | None = None


async def start_deploy(p: Platform, runner: DeployRunner, actor: Actor, body: DeployRequest,
                       rerun: Rerun = Rerun()) -> str:
    """A deployment of a git ref, an image, or the live release with today's variables."""
    source = origin_of(body.source)
    if isinstance(source, FromGit):
        _check_git(p, source.url, source.ref)
    return await _start(p, runner, actor, body, source, new_id(), rerun)


def _check_git(p: Platform, url: str, ref: str | None) -> None:
    sources.validate_git_url(url)
    if ref is not None:
        sources.validate_git_ref(ref)
    if sources.is_local_git(url) and not p.settings.git_allow_local:  # a well-formed URL
        raise Forbidden("repositories on the control plane's own disk are not allowed here; "
                        "use a remote URL, or set DOCKYARD_GIT_ALLOW_LOCAL=true")


async def start_archive_deploy(p: Platform, runner: DeployRunner, actor: Actor,
                               target: DeployTarget, chunks: AsyncIterator[bytes],
                               origin: ArchiveCommit | None = None) -> str:
    """Receive, check and unpack an uploaded archive, then deploy it. A hostile or oversized
    archive is refused before a deployment exists. `origin`: the commit it is the tree of."""
    await p.db.read(lambda s: _deployable(s, actor, target))
    deployment_id = new_id()
    staging = p.settings.data_dir / "builds" / deployment_id
    try:
        source = await _unpacked(p, chunks, staging)
        if origin is not None:
            source = source.model_copy(update=origin.model_dump(exclude_none=True))
        return await _start(p, runner, actor, target, source, deployment_id)
    except BaseException:
        await to_thread.run_sync(shutil.rmtree, staging, True)
        raise


async def _unpacked(p: Platform, chunks: AsyncIterator[bytes], staging: Path) -> FromArchive:
    await to_thread.run_sync(lambda: staging.mkdir(parents=True))
    archive = await archives.receive_archive(chunks, staging / "upload",
                                            p.settings.max_archive_bytes)
    app_dir = await to_thread.run_sync(archives.unpack_archive, archive, staging / "app")
    size = await to_thread.run_sync(_size_then_remove, archive)
    return FromArchive(path=str(app_dir), bytes=size)


def _size_then_remove(path: Path) -> int:
    size = path.stat().st_size
    path.unlink()
    return size


async def start_rollback(p: Platform, runner: DeployRunner, actor: Actor,
                         body: RollbackRequest) -> str:
    """Put a retained release back: its exact image tag, its variables and its config."""
    target = DeployTarget(project=body.project, service=body.service)
    source = FromRelease(kind="rollback", release=body.release)
    return await _start(p, runner, actor, target, source, new_id())


async def start_source(p: Platform, runner: DeployRunner, actor: Actor, target: DeployTarget,
                       source: Origin) -> str:
    """Start a deployment of `source` to `target`; Conflict while it is being deployed."""
    return await _start(p, runner, actor, target, source, new_id())


async def redeploy_project_apps(p: Platform, runner: DeployRunner, actor: Actor, project: str
                                ) -> list[AppRedeploy]:
    """A zero-downtime rollout of the live release of each app of `project` with today's
    variables and stateful services, as `dockyard restart` does (no release command). An app
    being deployed is skipped, saying so."""
    actor.require(Permission.WRITE)
    results = []
    for app in await linked_apps(p, actor, project):
        request = DeployRequest(project=project, service=app,
                                source=ReleaseSource(kind="release"))
        try:
            started = await start_deploy(p, runner, actor, request, Rerun(run_release=False))
        except Conflict as exc:
            results.append(AppRedeploy(service=app, skipped=exc.message))
        else:
            results.append(AppRedeploy(service=app, deployment_id=started))
    return results


async def linked_apps(p: Platform, actor: Actor, project: str) -> list[str]:
    """The apps of `project` that have a live release: those its stateful services reach
    once they are rolled out again."""

    async def tx(s: AsyncSession) -> list[str]:
        actor.require(Permission.READ)
        found = await project_named(s, actor, project)
        apps = await s.scalars(select(Service).where(
            Service.project_id == found.id, Service.kind == ServiceKind.APP)
            .order_by(Service.name))
        return [app.name for app in apps if await _releases(s, app)]

    return await p.db.read(tx)


async def _start(p: Platform, runner: DeployRunner, actor: Actor, target: DeployTarget,
                 source: Origin, deployment_id: str, rerun: Rerun = Rerun()) -> str:
    async def tx(s: AsyncSession) -> None:
        row = await _new_deployment(p, s, actor, target, source, deployment_id, rerun)
        row.progress = Progress(owner=runner.owner).to_column()
        s.add(row)
        await s.flush()

    try:
        await p.db.write(tx, info=actor.audit_info)
    except IntegrityError as exc:
        raise Conflict(f"service {target.project}/{target.service} is already being deployed; "
                       "wait for it to finish") from exc
    runner.start(deployment_id)
    return deployment_id


async def _deployable(s: AsyncSession, actor: Actor, target: DeployTarget) -> Service:
    service = await service_named(s, actor, target.project, target.service)
    actor.require(Permission.WRITE)
    if service.kind is not ServiceKind.APP:
        raise InvalidInput(f"{target.project}/{target.service} is a {service.kind.value} "
                           "service; only app services are deployed from code or images")
    active = await s.scalar(select(Deployment).where(
        Deployment.service_id == service.id, Deployment.status.in_(ACTIVE_STATUSES)))
    if active is not None:
        short = active.id[:8]
        raise Conflict(f"service {target.project}/{target.service} is being deployed by "
                       f"deployment {short}; wait for it or follow it with "
                       f"`dockyard deployments follow {short}`")
    return service


@dataclass(frozen=True)
class _Release:
    """What a deployment runs: its source, image, parameters, encrypted variables (its own
    and the injected URLs) and the stateful services it was linked to."""

    source: Origin
    image: str
    params: Effective
    env_ciphertext: str
    rollback_of: str | None = None
    processes: Processes = field(default_factory=Processes)
    links: list[ReleaseLink] = field(default_factory=list)


async def _new_deployment(p: Platform, s: AsyncSession, actor: Actor, target: DeployTarget,
                          source: Origin, deployment_id: str, rerun: Rerun) -> Deployment:
    service = await _deployable(s, actor, target)
    if rerun.scale is not None:
        service.config = {**service.config, "scale": rerun.scale}
    if isinstance(source, FromRelease):
        release = await _reuse(p, s, service, source, target)
    else:
        release = await _new_release(p, s, actor, service, target, source, deployment_id)
    servers = await target_servers(s, actor, service, target.servers)
    plan = DeploymentPlan(source=release.source, image=release.image, params=release.params,
                          servers=[x.id for x in servers],
                          site=deploy_plan.site_name(target.project, target.service),
                          hosts=await hosts_of(p, s, service, target.project),
                          processes=release.processes, only=rerun.only,
                          run_release=rerun.run_release, links=release.links)
    return Deployment(id=deployment_id, workspace_id=actor.workspace_id, service_id=service.id,
                      **plan.to_columns(), env_ciphertext=release.env_ciphertext,
                      rollback_of=release.rollback_of, triggered_by=actor.user_id,
                      status=DeploymentStatus.RUNNING, started_at=utcnow())


async def _new_release(p: Platform, s: AsyncSession, actor: Actor, service: Service,
                       target: DeployTarget, source: Origin, deployment_id: str) -> _Release:
    params = await effective_params(p, s, actor, service, target)
    base = await _image_base(p, s, service)
    image = deploy_plan.release_image(base, deployment_id).reference
    env = await _injected(p, s, service)
    return _Release(source, image, params, p.box.encrypt(json.dumps(env.env)), links=env.links)


async def _image_base(p: Platform, s: AsyncSession, service: Service) -> str:
    workspace = await s.get_one(Workspace, service.workspace_id)
    project = await s.get_one(Project, service.project_id)
    return deploy_plan.image_base(p.settings.registry, workspace.name, project.name,
                                  service.name)


async def _env(p: Platform, s: AsyncSession, service: Service) -> dict[str, str]:
    rows = await s.scalars(select(EnvVar).where(EnvVar.service_id == service.id))
    return {row.key: p.box.decrypt(row.value_ciphertext) for row in rows}


async def _injected(p: Platform, s: AsyncSession, service: Service) -> injection.Injection:
    """Today's environment of an app: its variables plus its project's stateful services."""
    from dockyard.core.preview_access import read_only_links
    from dockyard.core.stateful import project_links  # core.stateful redeploys through here

    links = await project_links(p, s, service.project_id)
    if service.preview_of is not None:  # a pull request's preview only reads them
        links = read_only_links(links, service.id)
    return injection.injected_env(links, await _env(p, s, service))


async def _reuse(p: Platform, s: AsyncSession, service: Service, source: FromRelease,
                 target: DeployTarget) -> _Release:
    """A rollback takes its release's image, variables and config exactly; a new release of
    the live image takes today's variables and any parameters the request changes."""
    if source.kind == "release":
        row = await _live(s, service)
        today = await _injected(p, s, service)
        env, links = p.box.encrypt(json.dumps(today.env)), today.links
        changes = target.params.model_dump(exclude_none=True) if target.params else {}
        rollback_of = None
    else:
        row = await _rollback_target(s, service, source.release)
        env, changes, rollback_of = row.env_ciphertext, {}, row.id
        links = DeploymentPlan.from_row(row).links
    old = DeploymentPlan.from_row(row)
    scale = {"scale": service.config.get("scale", {})}  # replicas are the service's, now
    params = Effective.model_validate({**old.params.model_dump(), **scale, **changes})
    return _Release(source.model_copy(update={"release": row.id}), old.image, params, env,
                    rollback_of, old.processes, links)


async def _releases(s: AsyncSession, service: Service) -> list[Deployment]:
    query = (select(Deployment)
             .where(Deployment.service_id == service.id,
                    Deployment.status == DeploymentStatus.SUCCEEDED)
             .order_by(Deployment.finished_at.desc()))
    return list(await s.scalars(query))


async def live_release(s: AsyncSession, service: Service) -> Deployment:
    """The service's live release; 422 if it has none yet."""
    return await _live(s, service)


async def _live(s: AsyncSession, service: Service) -> Deployment:
    releases = await _releases(s, service)
    if not releases:
        raise InvalidInput(f"service {service.name} has no release yet; deploy it first")
    return releases[0]


async def _rollback_target(s: AsyncSession, service: Service, wanted: str | None
                           ) -> Deployment:
    releases = await _releases(s, service)
    if wanted is None:
        if len(releases) < 2:
            raise InvalidInput(f"service {service.name} has no earlier release to roll back to")
        return releases[1]
    matches = [r for r in releases if r.id.startswith(wanted)]
    if len(matches) != 1:
        raise (NotFound("release", wanted) if not matches else
               InvalidInput(f"release prefix {wanted!r} is ambiguous; give more characters"))
    return matches[0]


async def history(p: Platform, actor: Actor, project: str, service: str, limit: int
                  ) -> list[DeploymentPublic]:
    async def tx(s: AsyncSession) -> list[DeploymentPublic]:
        actor.require(Permission.READ)
        found = await service_named(s, actor, project, service)
        query = (select(Deployment).where(Deployment.service_id == found.id)
                 .order_by(Deployment.created_at.desc()).limit(limit))
        releases = await _releases(s, found)
        live = releases[0].id if releases else None
        return [_public(row, project, service, row.id == live) for row in await s.scalars(query)]

    return await p.db.read(tx)


async def by_ref(s: AsyncSession, actor: Actor, ref: str) -> Deployment:
    """A deployment of the actor's workspace by id or by the first characters of its id."""
    query = select(Deployment).where(Deployment.workspace_id == actor.workspace_id,
                                     Deployment.id.startswith(ref, autoescape=True)).limit(2)
    found = list(await s.scalars(query))
    if not found:
        raise NotFound("deployment", ref)
    if len(found) > 1:
        raise InvalidInput(f"deployment id prefix {ref!r} is ambiguous; give more characters")
    return found[0]


async def get_deployment(p: Platform, actor: Actor, ref: str) -> DeploymentPublic:
    async def tx(s: AsyncSession) -> DeploymentPublic:
        actor.require(Permission.READ)
        row = await by_ref(s, actor, ref)
        service = await s.get_one(Service, row.service_id)
        project = await s.get_one(Project, service.project_id)
        releases = await _releases(s, service)
        return _public(row, project.name, service.name, bool(releases) and
                       releases[0].id == row.id)

    return await p.db.read(tx)


def _public(row: Deployment, project: str, service: str, live: bool) -> DeploymentPublic:
    plan = DeploymentPlan.from_row(row)
    return DeploymentPublic.model_validate({
        **{c: getattr(row, c) for c in DeploymentPublic.model_fields if hasattr(row, c)},
        "project": project, "service": service, "live": live,
        "config": {"params": plan.params.model_dump(mode="json"), "hosts": plan.hosts,
                   "links": [link.model_dump(mode="json") for link in plan.links]},
        "source": plan.public_source(),
    })
