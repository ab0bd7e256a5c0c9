"""What a delivery does, and deliveries that wait for their service's running deployment. A
push to the linked branch, or a pull request's new head or close, that arrives while its
service (the app, or the pull request's preview) is being deployed is recorded `queued` and
acted on when that deployment ends: per service the newest queued delivery wins, the older
ones become `superseded` (naming it), and a close wins over its pull request's updates. One
UPDATE that must change the row claims it, so no two processes act on it twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import previews
from dockyard.core.hook_deploys import deploy_commit
from dockyard.core.platform import Platform
from dockyard.core.repo_links import link_info
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import DockyardError
from dockyard.models.enums import ACTIVE_STATUSES
from dockyard.models.hooks import (
    Event,
    HookOutcome,
    LinkInfo,
    OtherEvent,
    Outcome,
    PullRequestEvent,
    PushEvent,
)
from dockyard.models.tables import Deployment, HookDelivery, Project, RepoLink, Service

log = logging.getLogger("dockyard.webhooks")
ROUNDS = 5  # deployments that start and end while a queue drains are waited for again
HANDLING = "being handled"


@dataclass(frozen=True)
class Queue:
    """The deliveries of one link that wait for one service: the app's pushes (`number`
    None) or pull request `number`'s events (its preview)."""

    link_id: str
    number: int | None


def waits(link: LinkInfo, event: Event) -> bool:
    """Whether the event deploys or removes something, so that it waits its turn."""
    if isinstance(event, PushEvent):
        return bool(event.branch) and event.branch == link.branch and not event.deleted
    if isinstance(event, PullRequestEvent):
        return event.action == "closed" or (link.previews and not event.from_fork)
    return False


def queue_of(link: LinkInfo, event: Event) -> Queue:
    number = event.number if isinstance(event, PullRequestEvent) else None
    return Queue(link.id, number)


def watch(p: Platform, runner: DeployRunner) -> None:
    """Drain the queue of each deployment's service when the deployment ends."""

    async def ended(deployment_id: str) -> None:
        queue = await p.db.read(lambda s: _queue_ended(s, deployment_id))
        if queue is not None:
            await drain(p, runner, queue)

    runner.after_end.append(ended)


async def resume(p: Platform, runner: DeployRunner) -> None:
    """Drain what was queued while no process ran (at startup, after `recover`)."""

    async def tx(s: AsyncSession) -> list[Queue]:
        rows = await s.execute(select(HookDelivery.link_id, HookDelivery.pull_request)
                               .where(HookDelivery.outcome == "queued").distinct())
        return [Queue(link_id, number) for link_id, number in rows.all()]

    for queue in await p.db.read(tx):
        await drain(p, runner, queue)


async def drain(p: Platform, runner: DeployRunner, queue: Queue) -> None:
    """Act on the queue's winner unless its service is being deployed (a refusal because a
    deployment started meanwhile queues it again)."""
    for _ in range(ROUNDS):
        picked = await p.db.write(lambda s: _pick(s, queue))
        if picked is None:
            return
        link, row = picked
        await record(p, row.id, await _act_in_turn(p, runner, link, row, queue))


async def _act_in_turn(p: Platform, runner: DeployRunner, link: LinkInfo, row: HookDelivery,
                       queue: Queue) -> HookOutcome:
    outcome = await act(p, runner, link, _event_of(link, row))
    busy = await p.db.read(lambda s: _busy(s, link, queue))
    if busy and outcome.outcome in ("refused", "failed"):
        return HookOutcome("queued", f"queued: {busy}; acted on when it ends")
    return outcome


async def record(p: Platform, row_id: str, outcome: HookOutcome) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await s.get_one(HookDelivery, row_id)
        row.outcome, row.detail = outcome.outcome, outcome.detail
        row.deployment_id = outcome.deployment_id

    await p.db.write(tx)


async def _queue_ended(s: AsyncSession, deployment_id: str) -> Queue | None:
    deployment = await s.get(Deployment, deployment_id)
    service = await s.get(Service, deployment.service_id) if deployment else None
    if service is None:
        return None
    main_id = service.preview_of or service.id
    link_id = await s.scalar(select(RepoLink.id).where(RepoLink.service_id == main_id))
    return None if link_id is None else Queue(link_id, service.preview_number)


async def _pick(s: AsyncSession, queue: Queue) -> tuple[LinkInfo, HookDelivery] | None:
    """The winner claimed and the others superseded, or None: nothing queued, the service
    being deployed (the queued rows then name that deployment) or another process first."""
    link = await _link(s, queue.link_id)
    rows = list(await s.scalars(_queued(queue).order_by(HookDelivery.created_at)))
    if link is None or not rows:
        return None
    if busy := await _busy(s, link, queue):
        await s.execute(update(HookDelivery).where(
            HookDelivery.id.in_([row.id for row in rows]), HookDelivery.outcome == "queued")
            .values(detail=f"queued: {busy}; acted on when it ends"))
        return None
    closes = [row for row in rows if row.action == "closed"]
    winner = (closes or rows)[-1]
    if not await _claim(s, winner.id):
        return None
    for row in rows:
        if row is not winner:
            await _set_if_queued(s, row.id, "superseded", _superseding(winner))
    return link, winner


def _queued(queue: Queue) -> Select[HookDelivery]:
    number = (HookDelivery.pull_request.is_(None) if queue.number is None
              else HookDelivery.pull_request == queue.number)
    return select(HookDelivery).where(HookDelivery.link_id == queue.link_id, number,
                                      HookDelivery.outcome == "queued")


def _superseding(winner: HookDelivery) -> str:
    if winner.action == "closed":
        return (f"superseded by delivery {winner.delivery_id}, which closes pull request "
                f"#{winner.pull_request}")
    return f"superseded by the newer delivery {winner.delivery_id} (commit {winner.commit})"


async def _claim(s: AsyncSession, row_id: str) -> bool:
    return await _set_if_queued(s, row_id, "ignored", HANDLING)


async def _set_if_queued(s: AsyncSession, row_id: str, outcome: Outcome, detail: str) -> bool:
    changed = await s.execute(update(HookDelivery).where(
        HookDelivery.id == row_id, HookDelivery.outcome == "queued")
        .values(outcome=outcome, detail=detail))
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


async def _link(s: AsyncSession, link_id: str) -> LinkInfo | None:
    found = (await s.execute(
        select(RepoLink, Service.name, Project.name)
        .join(Service, Service.id == RepoLink.service_id)
        .join(Project, Project.id == Service.project_id)
        .where(RepoLink.id == link_id))).first()
    return None if found is None else link_info(found[0], found[2], found[1])


async def _busy(s: AsyncSession, link: LinkInfo, queue: Queue) -> str:
    """'{project}/{service} is being deployed by deployment X', or ''."""
    service = link.service if queue.number is None else f"{link.service}-pr-{queue.number}"
    service_id = link.service_id if queue.number is None else await s.scalar(
        select(Service.id).where(Service.preview_of == link.service_id,
                                 Service.preview_number == queue.number))
    active = await s.scalar(select(Deployment.id).where(
        Deployment.service_id == service_id, Deployment.status.in_(ACTIVE_STATUSES)))
    if active is None:
        return ""
    return f"{link.project}/{service} is being deployed by deployment {active[:8]}"


def _event_of(link: LinkInfo, row: HookDelivery) -> Event:
    if row.pull_request is None:
        return PushEvent(repo_urls=(), branch=row.ref, commit=row.commit)
    action: Literal["closed", "updated"] = "closed" if row.action == "closed" else "updated"
    return PullRequestEvent(repo_urls=(), number=row.pull_request, action=action,
                            head_commit=row.commit, head_branch=row.ref,
                            base_branch=link.branch)


async def act(p: Platform, runner: DeployRunner, link: LinkInfo, event: Event) -> HookOutcome:
    """Deploy a push to the link's branch, hand a pull request to previews, ignore the rest."""
    try:
        if isinstance(event, PushEvent):
            return await _on_push(p, runner, link, event)
        if isinstance(event, PullRequestEvent):
            return await previews.on_pull_request(p, runner, link, event)
        return _other(event)
    except DockyardError as exc:
        kind: Outcome = "refused" if exc.status_code in (403, 409, 422) else "failed"
        return HookOutcome(kind, exc.message)
    except Exception:
        log.exception("webhook event %s for link %s failed", event, link.id)
        return HookOutcome("failed", "Dockyard failed to act on the delivery; see its log")


def _other(event: OtherEvent) -> HookOutcome:
    return HookOutcome("ignored", f"ignored: a {event.name!r} event starts nothing")


async def _on_push(p: Platform, runner: DeployRunner, link: LinkInfo, event: PushEvent
                   ) -> HookOutcome:
    deploys = f"(this link deploys {link.branch!r})"
    if not event.branch:
        return HookOutcome("ignored", f"ignored: a tag was pushed {deploys}")
    if event.deleted:
        return HookOutcome("ignored", f"ignored: branch {event.branch!r} was deleted {deploys}")
    if event.branch != link.branch:
        return HookOutcome("ignored", f"ignored: a push to {event.branch!r} {deploys}")
    started = await deploy_commit(p, runner, link, link.project, link.service, event.commit,
                                  event.branch)
    return HookOutcome("deployed", f"deploying commit {event.commit} of {event.branch!r}",
                       deployment_id=started)
