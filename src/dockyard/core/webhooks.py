"""A forge's webhook delivery received: the links of its repository found, its signature
verified against each link's secret, redeliveries recognised, and each new delivery acted on
(a push to the link's branch deploys that commit; a pull request goes to previews) and
recorded with its outcome. Nothing is started or recorded before a signature verifies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import hook_queue
from dockyard.core.platform import Platform
from dockyard.core.repo_links import link_info
from dockyard.deploy.archives import PayloadTooLarge
from dockyard.deploy.runner import DeployRunner
from dockyard.hooks import providers
from dockyard.hooks.payloads import BadDelivery, repo_key
from dockyard.kernel.errors import NotAuthenticated, NotFound
from dockyard.models.hook_schemas import HookAnswer, HookResult
from dockyard.models.hooks import (
    Delivery,
    Event,
    HookOutcome,
    LinkInfo,
    Outcome,
    Provider,
    PullRequestEvent,
    PushEvent,
)
from dockyard.models.tables import HookDelivery, Project, RepoLink, Service


async def receive(p: Platform, runner: DeployRunner, provider: Provider,
                  headers: Mapping[str, str], chunks: AsyncIterator[bytes], client: str
                  ) -> HookAnswer:
    p.limiters.hooks.hit(client)
    body = await _body(chunks, p.settings.max_hook_body_bytes)
    delivery = providers.read(provider, headers, body)
    links = await _links_of(p, delivery)
    signed = [link for link, secret in links
              if providers.verify(provider, headers, body, secret)]
    if not signed:
        raise NotAuthenticated(
            "the delivery's signature matches no link of this repository; paste the secret "
            "`dockyard git link` or `dockyard git rotate-secret` printed into the webhook")
    return HookAnswer(results=[await _handle(p, runner, link, delivery) for link in signed])


async def _body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(limit, what="delivery", setting="DOCKYARD_MAX_HOOK_BODY_BYTES")
    return bytes(body)


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
    event = delivery.event
    if isinstance(event, PushEvent):
        event = event.of_branch(link.branch)
    waits = hook_queue.waits(link, event)
    row_id = await _claim(p, link, delivery, event, "queued" if waits else "ignored")
    if row_id is None:
        return _result(link, HookOutcome("ignored", "already handled: a redelivery of "
                                         f"{delivery.delivery_id}"), duplicate=True)
    if waits:
        await hook_queue.drain(p, runner, hook_queue.queue_of(link, event))
        return _result(link, await _outcome_of(p, row_id))
    outcome = await hook_queue.act(p, runner, link, event)
    await hook_queue.record(p, row_id, outcome)
    return _result(link, outcome)


def _result(link: LinkInfo, outcome: HookOutcome, duplicate: bool = False) -> HookResult:
    return HookResult(project=link.project, service=link.service,
                      outcome="duplicate" if duplicate else outcome.outcome,
                      detail=outcome.detail, deployment_id=outcome.deployment_id)


def _columns(event: Event) -> dict[str, object]:
    if isinstance(event, PushEvent):
        return {"event": "push", "ref": event.branch, "commit": event.commit}
    if isinstance(event, PullRequestEvent):
        return {"event": "pull_request", "ref": event.head_branch, "action": event.action,
                "commit": event.head_commit, "pull_request": event.number}
    return {"event": "ping" if event.name in ("ping", "diagnostics:ping") else "other"}


async def _claim(p: Platform, link: LinkInfo, delivery: Delivery, event: Event,
                 outcome: Outcome) -> str | None:
    """Record the delivery (queued, or being handled); None when it was already (a
    redelivery)."""

    async def tx(s: AsyncSession) -> str:
        row = HookDelivery(workspace_id=link.workspace_id, link_id=link.id,
                           provider=delivery.provider.value,
                           delivery_id=delivery.delivery_id, outcome=outcome,
                           detail=outcome if outcome == "queued" else hook_queue.HANDLING,
                           **_columns(event))
        s.add(row)
        await s.flush()
        return row.id

    try:
        return await p.db.write(tx)
    except IntegrityError:
        return None


async def _outcome_of(p: Platform, row_id: str) -> HookOutcome:
    async def tx(s: AsyncSession) -> HookOutcome:
        row = await s.get_one(HookDelivery, row_id)
        return HookOutcome(row.outcome, row.detail, row.deployment_id)  # type: ignore[arg-type]

    return await p.db.read(tx)
