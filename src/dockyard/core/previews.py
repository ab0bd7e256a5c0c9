"""Preview environments: each pull request of a linked repository gets its own copy of the
app, `{service}-pr-{n}` in the same project, at `pr-{n}.{service}.{project}.{apps_domain}`,
on the main service's servers, with the main service's config and variables (copied when it
is created) and read-only access to the project's stateful services. Each new head deploys
it again; closing the pull request takes it off its servers and forgets it. The main
service's release is never touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import preview_access, teardown
from dockyard.core.authz import Actor, Permission
from dockyard.core.credentials import provider_token
from dockyard.core.deploy_targets import preview_host
from dockyard.core.dns import DnsFor, default_dns_for
from dockyard.core.hook_deploys import acting_as, deploy_commit
from dockyard.core.lookup import project_named
from dockyard.core.platform import Platform
from dockyard.core.services import forget_service
from dockyard.deploy.run import Connect
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import DockyardError, ServerFailed
from dockyard.models.deployment_plan import DeploymentPlan, FromGit
from dockyard.models.enums import DEPLOYABLE_SERVER_STATUSES, ServiceKind
from dockyard.models.hooks import HookOutcome, LinkInfo, PullRequestEvent
from dockyard.models.schemas import PreviewPublic
from dockyard.models.tables import (
    Deployment,
    EnvVar,
    Placement,
    Project,
    RepoLink,
    Server,
    Service,
)
from dockyard.providers.cloudflare import CloudflareFailed

MAX_NAME = 63


class PreviewRefused(DockyardError):
    status_code = 409


@dataclass(frozen=True)
class Preview:
    """A preview service as the steps after its transaction need it."""

    id: str
    name: str
    host: str
    addresses: list[str]


async def on_pull_request(p: Platform, runner: DeployRunner, link: LinkInfo,
                          event: PullRequestEvent, dns_for: DnsFor | None = None
                          ) -> HookOutcome:
    """opened/updated: create or update the preview and deploy the head; closed: remove it."""
    dns_for = dns_for or default_dns_for(p.settings)
    if event.action == "closed":
        return await close_preview(p, runner.connect, link, event.number, dns_for)
    try:
        refuse_unless_allowed(link, event)
        actor = await acting_as(p, link)
        preview = await p.db.write(lambda s: _ensure(p, s, link, event.number),
                                   info=actor.audit_info)
        await preview_access.grant(p, runner.connect, link.project, preview.id)
        await _put_dns(p, link, preview, dns_for)
        started = await deploy_commit(p, runner, link, link.project, preview.name,
                                      event.head_commit, event.head_branch)
    except DockyardError as exc:
        failed = isinstance(exc, ServerFailed | CloudflareFailed)  # not the request's fault
        return HookOutcome("failed" if failed else "refused", exc.message)
    return HookOutcome("deployed", f"preview {link.project}/{preview.name} deploys "
                       f"{event.head_commit[:12]} at http://{preview.host}/", started)


def refuse_unless_allowed(link: LinkInfo, event: PullRequestEvent) -> None:
    if not link.previews:
        raise PreviewRefused(f"previews are off for {link.project}/{link.service}; turn them "
                             "on in its repository link")
    if event.from_fork:
        raise PreviewRefused(f"pull request #{event.number} comes from a fork: previews run "
                             "only branches of the linked repository")


async def _ensure(p: Platform, s: AsyncSession, link: LinkInfo, number: int) -> Preview:
    main = await s.get_one(Service, link.service_id)
    found = await _preview_of(s, main.id, number)
    if found is None:
        found = await _create(s, main, number, link)
    return await _described(p, s, found, link.project)


async def _preview_of(s: AsyncSession, main_id: str, number: int) -> Service | None:
    return await s.scalar(select(Service).where(
        Service.preview_of == main_id, Service.preview_number == number))


async def _create(s: AsyncSession, main: Service, number: int, link: LinkInfo) -> Service:
    name = f"{main.name}-pr-{number}"
    if len(name) > MAX_NAME:
        raise PreviewRefused(f"the preview's name {name} is longer than {MAX_NAME} "
                             f"characters; rename {main.name} to a shorter name")
    await _within_limit(s, main.project_id, link.project)
    if await s.scalar(select(Service.id).where(Service.project_id == main.project_id,
                                               Service.name == name)):
        raise PreviewRefused(f"{link.project}/{name} already exists and is not the preview "
                             f"of pull request #{number}; rename or delete it")
    preview = Service(workspace_id=main.workspace_id, project_id=main.project_id, name=name,
                      kind=ServiceKind.APP, config=dict(main.config), preview_of=main.id,
                      preview_number=number)
    s.add(preview)
    await s.flush()
    await _copy_rows(s, main, preview)
    return preview


async def _within_limit(s: AsyncSession, project_id: str, project: str) -> None:
    limit = (await s.get_one(Project, project_id)).preview_limit
    open_ = list(await s.scalars(select(Service.name).where(
        Service.project_id == project_id, Service.preview_of.is_not(None))
        .order_by(Service.name)))
    if len(open_) >= limit:
        raise PreviewRefused(
            f"project {project} is at its limit of {limit} preview environment(s) (open: "
            f"{', '.join(open_) or 'none'}); close a pull request or raise the limit with "
            f"`dockyard previews limit -p {project} N`")


async def _copy_rows(s: AsyncSession, main: Service, preview: Service) -> None:
    """The main service's variables, and its servers as the preview's placements."""
    for var in await s.scalars(select(EnvVar).where(EnvVar.service_id == main.id)):
        s.add(EnvVar(workspace_id=var.workspace_id, service_id=preview.id, key=var.key,
                     value_ciphertext=var.value_ciphertext, is_secret=var.is_secret))
    for server_id in await _servers_of(s, main):
        s.add(Placement(workspace_id=main.workspace_id, service_id=preview.id,
                        server_id=server_id))
    await s.flush()


async def _servers_of(s: AsyncSession, main: Service) -> list[str]:
    """Where the main service runs; before its first deploy, where it would (every active
    server), so that the preview's DNS record has its addresses from the start."""
    placed = list(await s.scalars(select(Placement.server_id).where(
        Placement.service_id == main.id)))
    return placed or list(await s.scalars(select(Server.id).where(
        Server.workspace_id == main.workspace_id,
        Server.status.in_(DEPLOYABLE_SERVER_STATUSES))))


async def _described(p: Platform, s: AsyncSession, preview: Service, project: str) -> Preview:
    main = await s.get_one(Service, preview.preview_of)
    assert preview.preview_number is not None
    host = preview_host(preview.preview_number, main.name, project, p.settings.apps_domain)
    addresses = await s.scalars(select(Server.ip).join(
        Placement, Placement.server_id == Server.id).where(
        Placement.service_id == preview.id, Server.ip != ""))
    return Preview(preview.id, preview.name, host, sorted(set(addresses)))


async def _put_dns(p: Platform, link: LinkInfo, preview: Preview, dns_for: DnsFor) -> None:
    if link.preview_dns_credential and preview.addresses:
        token = await provider_token(p, link.workspace_id, link.preview_dns_credential)
        async with dns_for(token) as dns:
            await dns.sync_records(preview.host, preview.addresses, False)


async def close_preview(p: Platform, connect: Connect, link: LinkInfo, number: int,
                        dns_for: DnsFor) -> HookOutcome:
    """Off its servers, its read-only access and DNS record gone, then its row."""
    try:
        closed = await _remove(p, connect, link, number, dns_for, None)
    except DockyardError as exc:
        return HookOutcome("failed", f"{exc.message}. Remove the preview by hand once that is "
                           f"settled: {_by_hand(link, number)}")
    if closed is None:
        return HookOutcome("ignored", f"pull request #{number} has no preview")
    preview, servers = closed
    return HookOutcome("removed", f"preview {link.project}/{preview.name} removed from "
                       f"{servers} server(s)")


def _by_hand(link: LinkInfo, number: int) -> str:
    return (f"`dockyard services delete {link.service}-pr-{number} -p {link.project}` (its "
            "DNS record and database users go too)")


async def _remove(p: Platform, connect: Connect, link: LinkInfo, number: int, dns_for: DnsFor,
                  info: dict[str, Any] | None) -> tuple[Preview, int] | None:
    """The preview taken down and forgotten (None: there is none); its row is deleted as
    `info` says, else as the member who linked the repository."""
    async def read(s: AsyncSession) -> tuple[Preview, teardown.Target] | None:
        found = await _preview_of(s, link.service_id, number)
        if found is None:
            return None
        return (await _described(p, s, found, link.project),
                await teardown.target_of(p, s, found))

    read_ = await p.db.read(read)
    if read_ is None:
        return None
    preview, target = read_
    removed = await teardown.take_down(connect, target)
    teardown.require_placed_done(removed, target)
    await preview_access.revoke(p, connect, link.project, preview.id)
    await remove_dns_of(p, preview.id, dns_for)
    info = info if info is not None else (await acting_as(p, link)).audit_info
    await p.db.write(lambda s: forget_service(s, preview.id), info=info)
    return preview, len(removed)


async def close_all(p: Platform, connect: Connect, link: LinkInfo, actor: Actor,
                    dns_for: DnsFor | None = None) -> list[str]:
    """Every open preview of the link's service removed (before it is unlinked or its
    previews turned off: nothing would close them later); the names removed. Refused
    (409), naming those still open and how to remove each, when one cannot be."""
    dns_for = dns_for or default_dns_for(p.settings)
    numbers = await p.db.read(lambda s: _open_numbers(s, link.service_id))
    removed: list[str] = []
    for number in numbers:
        try:
            await _remove(p, connect, link, number, dns_for, actor.audit_info)
        except DockyardError as exc:
            left = [f"{link.service}-pr-{n}" for n in numbers[len(removed):]]
            raise PreviewRefused(
                f"{exc.message}. The link is kept while previews are open ({', '.join(left)}"
                f"): try again once that is settled, or remove each by hand: "
                f"{_by_hand(link, number)}") from exc
        removed.append(f"{link.service}-pr-{number}")
    return removed


async def _open_numbers(s: AsyncSession, main_id: str) -> list[int]:
    return [x for x in await s.scalars(select(Service.preview_number).where(
        Service.preview_of == main_id).order_by(Service.preview_number)) if x is not None]


async def remove_dns_of(p: Platform, service_id: str, dns_for: DnsFor) -> None:
    """Delete a preview's DNS record (nothing for another service, or without a credential)."""
    async def tx(s: AsyncSession) -> tuple[str, str, str] | None:
        preview = await s.get(Service, service_id)
        if preview is None or preview.preview_of is None:
            return None
        link = await s.scalar(select(RepoLink).where(RepoLink.service_id == preview.preview_of))
        if link is None or not link.preview_dns_credential:
            return None
        project = (await s.get_one(Project, preview.project_id)).name
        host = (await _described(p, s, preview, project)).host
        return link.workspace_id, link.preview_dns_credential, host

    found = await p.db.read(tx)
    if found is not None:
        workspace_id, credential, host = found
        async with dns_for(await provider_token(p, workspace_id, credential)) as dns:
            await dns.remove_records(host)


async def list_previews(p: Platform, actor: Actor, project: str) -> list[PreviewPublic]:
    async def tx(s: AsyncSession) -> list[PreviewPublic]:
        actor.require(Permission.READ)
        found = await project_named(s, actor, project)
        rows = await s.scalars(select(Service).where(
            Service.project_id == found.id, Service.preview_of.is_not(None))
            .order_by(Service.preview_number))
        return [await _public(p, s, row, project) for row in rows]

    return await p.db.read(tx)


async def _public(p: Platform, s: AsyncSession, row: Service, project: str) -> PreviewPublic:
    described = await _described(p, s, row, project)
    main = await s.get_one(Service, row.preview_of)
    last = await s.scalar(select(Deployment).where(Deployment.service_id == row.id)
                          .order_by(Deployment.created_at.desc()).limit(1))
    return PreviewPublic(
        service=row.name, of=main.name, pull_request=row.preview_number or 0,
        host=described.host, url=f"http://{described.host}/",
        commit=_commit_of(last), status=last.status.value if last else "none",
        deployment_id=last.id if last else None, created_at=row.created_at)


def _commit_of(row: Deployment | None) -> str:
    if row is None:
        return ""
    source = DeploymentPlan.from_row(row).source
    return (source.commit or "") if isinstance(source, FromGit) else ""
