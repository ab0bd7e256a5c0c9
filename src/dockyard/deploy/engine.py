"""The deployment state machine: build, roll out, commit; any failure puts the previous
release back. Every phase is persisted, so a restarted control plane can finish or undo it."""

from __future__ import annotations

import logging
import shutil

import httpx
from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.agent.client import AgentError
from dockyard.deploy import build, disk_floor, injection, plan, release, rollout
from dockyard.deploy.run import Run, describe
from dockyard.kernel.audit import creator, record_outcome
from dockyard.kernel.errors import DockyardError
from dockyard.models.base import utcnow
from dockyard.models.deployment_plan import Phase
from dockyard.models.enums import DeploymentStatus
from dockyard.models.tables import Deployment, Placement, Service

log = logging.getLogger("dockyard.deploy")


async def execute(run: Run) -> None:
    """Carry `run` to its end: succeeded, or failed with the previous release serving."""
    try:
        if run.phase is Phase.START:
            await _announce(run)
            await disk_floor.check(run)
        if not run.phase.past_switch:
            await build.build_release(run)
            await release.run_release_command(run)
            await run.enter(Phase.ROLLOUT, f"rolling out to {len(run.targets)} server(s)")
            await rollout.roll_out(run)
        await _commit(run)
    except (DockyardError, AgentError, httpx.TransportError) as exc:
        reason = describe(exc)
        log.warning("deployment %s failed: %s", run.deployment_id, reason.partition("\n")[0])
        await _undo(run, reason)
    except Exception as exc:
        log.exception("deployment %s failed unexpectedly", run.deployment_id)
        await _undo(run, describe(exc))


async def _announce(run: Run) -> None:
    servers = [t.name for t in run.targets]
    await run.emit("deployment", f"deploying {run.project}/{run.service} as {run.image.reference} "
                   f"to {', '.join(servers)}", service=f"{run.project}/{run.service}",
                   image=run.image.reference, servers=servers, hosts=run.hosts)
    await _announce_links(run)


async def _announce_links(run: Run) -> None:
    """Which stateful services the release is linked to, and each variable not injected."""
    if run.plan.links:
        await run.emit("links", injection.linked_message(run.plan.links),
                       links=[x.model_dump(mode="json") for x in run.plan.links])
    for link in run.plan.overridden_links:
        await run.emit("links", injection.overridden_message(link), variable=link.variable,
                       stateful_service=link.service)


async def recover(run: Run) -> None:
    """Finish a deployment whose control plane died: past the switch it completes, before it
    the previous release is put back."""
    await run.emit("warning", f"the control plane restarted during phase {run.phase or 'start'}")
    if run.phase.past_switch:
        await execute(run)
    else:
        await _undo(run, f"interrupted by a control-plane restart during phase "
                         f"{run.phase or 'start'}; the previous release keeps serving")


async def _commit(run: Run) -> None:
    problems = await rollout.commit(run, await run.db.read(lambda s: _retained_tags(s, run)))
    for problem in problems:
        await run.emit("warning", f"clean-up: {problem}; the reconciler removes what is left "
                                  "once the server answers")
    await _finish(run, DeploymentStatus.SUCCEEDED, "")


async def _undo(run: Run, reason: str) -> None:
    await run.enter(Phase.REVERT, "putting the previous release back")
    try:
        problems = await rollout.revert(run)
    except Exception as exc:  # the reason the deploy failed matters more; say both
        problems = [describe(exc)]
    if problems:
        reason += ("; could not fully revert: " + "; ".join(problems) + " (the reconciler "
                   "finishes it once the server answers)")
    await _finish(run, DeploymentStatus.FAILED, reason)


async def _finish(run: Run, status: DeploymentStatus, error: str) -> None:
    """The final status and the `done` event in one transaction: a reader never waits for a
    `done` that a crash kept from being written, and a finished deployment is never resumed."""
    run.phase = Phase.DONE

    async def record(s: AsyncSession) -> None:
        row = await s.get_one(Deployment, run.deployment_id)
        before = _outcome(row)
        row.status, row.error, row.finished_at = status, error, utcnow()
        row.phase, row.progress = run.phase.value, run.progress.to_column()
        if status is DeploymentStatus.SUCCEEDED:
            await _record_release(s, run)
        started_by = await creator(s, row) or {"actor_user_id": row.triggered_by}
        await record_outcome(s, row, before, _outcome(row), started_by)

    message = (f"deployed {run.image.reference}" if status is DeploymentStatus.SUCCEEDED
               else f"deployment failed: {error}")
    await run.log.append(run.deployment_id, "done", message, alongside=record,
                         status=status.value, error=error, image=run.image.reference,
                         urls=[f"http://{host}/" for host in run.hosts])
    await to_thread.run_sync(shutil.rmtree, build.work_dir(run), True)


def _outcome(row: Deployment) -> dict[str, object]:
    """What the history row of a deployment's end says of it."""
    return {"status": row.status, "error": row.error, "image_tag": row.image_tag,
            "finished_at": row.finished_at}


async def _retained_tags(s: AsyncSession, run: Run) -> list[str]:
    """The image tags of this release and the newest earlier ones, `keep_releases` in all."""
    deployment = await s.get_one(Deployment, run.deployment_id)
    query = (select(Deployment.image_tag)
             .where(Deployment.service_id == deployment.service_id,
                    Deployment.status == DeploymentStatus.SUCCEEDED)
             .order_by(Deployment.finished_at.desc()))
    tags = [run.image.tag]
    for reference in await s.scalars(query):
        image = plan.parse_image(reference) if reference else None
        if image and image.repository == run.image.repository and image.tag not in tags:
            tags.append(image.tag)
    return tags[:run.params.keep_releases]


async def _record_release(s: AsyncSession, run: Run) -> None:
    """The service now runs this image on exactly these servers."""
    deployment = await s.get_one(Deployment, run.deployment_id)
    service = await s.get_one(Service, deployment.service_id)
    service.image = run.image.reference
    placed = {p.server_id: p for p in await s.scalars(
        select(Placement).where(Placement.service_id == service.id))}
    wanted = {t.id for t in run.targets}
    for server_id in wanted - set(placed):
        s.add(Placement(workspace_id=service.workspace_id, service_id=service.id,
                        server_id=server_id))
    for server_id in set(placed) - wanted:
        await s.delete(placed[server_id])
