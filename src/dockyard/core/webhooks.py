"""A forge's webhook delivery received: the links of its repository found, its signature
verified against each link's secret, redeliveries recognised, and each new delivery acted on
(a push to the link's branch deploys that commit; a pull request goes to previews) and
recorded with its outcome. Nothing is started or recorded before a signature verifies."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import previews
from dockyard.core.hook_deploys import deploy_commit
from dockyard.core.platform import Platform
from dockyard.core.repo_links import link_info
from dockyard.deploy.runner import DeployRunner
from dockyard.hooks import providers
from dockyard.hooks.payloads import BadDelivery, repo_key
from dockyard.kernel.errors import DockyardError, NotAuthenticated, NotFound
from dockyard.models.hook_schemas import HookAnswer, HookResult
from dockyard.models.hooks import (
    Delivery,
    HookOutcome,
    LinkInfo,
    OtherEvent,
    Outcome,
    Provider,
    PullRequestEvent,
    PushEvent,
)
from dockyard.models.tables import HookDelivery, Project, RepoLink, Service

log = logging.getLogger("dockyard.webhooks")


async def receive(p: Platform, runner: DeployRunner, provider: Provider,
                  headers: Mapping[str, str], body: bytes, client: str) -> HookAnswer:
    p.limiters.per_client.hit(f"hooks:client:{client}")
    delivery = providers.read(provider, headers, body)
    links = await _links_of(p, delivery)
    signed = [link for link, secret in links
              if providers.verify(provider, headers, body, secret)]
    if not signed:
        raise NotAuthenticated(
            "the delivery's signature matches no link of this repository; paste the secret "
            "`dockyard git link` or `dockyard git rotate-secret` printed into the webhook")
    return HookAnswer(results=[await _handle(p, runner, link, delivery) for link in signed])


async def _links_of(p: Platform, delivery: Delivery) -> list[tuple[LinkInfo, str]]:
    """The links of the delivery's repository, with their secrets."""
    keys = {repo_key(url) for url in delivery.event.repo_urls}
    if not keys:
        raise BadDelivery("the payload names no repository")

    async def tx(s: AsyncSession) -> list[tuple[LinkInfo, str]]:
        query = (select(RepoLink, Service.name, Project.name)
                 .join(Service, Service.id == RepoLink.service_id)
                 .join(Project, Project.id == Service.project_id)
                 .where(RepoLink.repo_key.in_(sorted(keys))))
        return [(link_info(row, project, service), p.box.decrypt(row.secret_ciphertext))
                for row, service, project in (await s.execute(query)).all()]

    found = await p.db.read(tx)
    if not found:
        raise NotFound("repository link for", sorted(keys)[0])
    return found


async def _handle(p: Platform, runner: DeployRunner, link: LinkInfo, delivery: Delivery
                  ) -> HookResult:
    row_id = await _claim(p, link, delivery)
    if row_id is None:
        return _result(link, HookOutcome("ignored", "already handled: a redelivery of "
                                         f"{delivery.delivery_id}"), duplicate=True)
    outcome = await _act(p, runner, link, delivery)
    await _record(p, row_id, outcome)
    return _result(link, outcome)


def _result(link: LinkInfo, outcome: HookOutcome, duplicate: bool = False) -> HookResult:
    return HookResult(project=link.project, service=link.service,
                      outcome="duplicate" if duplicate else outcome.outcome,
                      detail=outcome.detail, deployment_id=outcome.deployment_id)


def _columns(delivery: Delivery) -> dict[str, object]:
    event = delivery.event
    if isinstance(event, PushEvent):
        return {"event": "push", "ref": event.branch, "commit": event.commit}
    if isinstance(event, PullRequestEvent):
        return {"event": "pull_request", "ref": event.head_branch,
                "commit": event.head_commit, "pull_request": event.number}
    return {"event": "ping" if event.name in ("ping", "diagnostics:ping") else "other"}


async def _claim(p: Platform, link: LinkInfo, delivery: Delivery) -> str | None:
    """Record the delivery as being handled; None when it was already (a redelivery)."""

    async def tx(s: AsyncSession) -> str:
        row = HookDelivery(workspace_id=link.workspace_id, link_id=link.id,
                           provider=delivery.provider.value,
                           delivery_id=delivery.delivery_id, outcome="ignored",
                           detail="being handled", **_columns(delivery))
        s.add(row)
        await s.flush()
        return row.id

    try:
        return await p.db.write(tx)
    except IntegrityError:
        return None


async def _record(p: Platform, row_id: str, outcome: HookOutcome) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await s.get_one(HookDelivery, row_id)
        row.outcome, row.detail = outcome.outcome, outcome.detail
        row.deployment_id = outcome.deployment_id

    await p.db.write(tx)


async def _act(p: Platform, runner: DeployRunner, link: LinkInfo, delivery: Delivery
               ) -> HookOutcome:
    event = delivery.event
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
        log.exception("webhook delivery %s for link %s failed", delivery.delivery_id, link.id)
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

