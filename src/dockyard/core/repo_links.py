"""A service linked to a forge repository: link, show, unlink, rotate the webhook secret, and
the deliveries received. The secret is Dockyard's own (generated, shown once); a private
repository's token or deploy key is stored encrypted and never shown."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.lookup import service_named
from dockyard.core.platform import Platform
from dockyard.core.previews import close_all
from dockyard.deploy import sources
from dockyard.deploy.run import Connect
from dockyard.hooks.payloads import repo_key
from dockyard.kernel.errors import Forbidden, InvalidInput, NotFound
from dockyard.models.enums import ServiceKind
from dockyard.models.hook_schemas import (
    DeliveryPublic,
    RepoLinkPublic,
    RepoLinkSecret,
    RepoLinkSet,
    RepoUnlinked,
)
from dockyard.models.hooks import LinkInfo, Provider
from dockyard.models.tables import HookDelivery, ProviderCredential, RepoLink, Service

DELIVERIES_SHOWN = 100


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def webhook_urls(p: Platform) -> dict[str, str]:
    return {provider.value: f"{p.settings.api_url}/api/v1/hooks/{provider.value}"
            for provider in Provider}


def _public(p: Platform, row: RepoLink, project: str, service: str) -> RepoLinkPublic:
    return RepoLinkPublic(
        project=project, service=service, repo_url=row.repo_url, branch=row.branch,
        previews=row.previews, preview_dns_credential=row.preview_dns_credential or None,
        credential=row.credential_kind, webhook_urls=webhook_urls(p),
        created_at=row.created_at, updated_at=row.updated_at)


def _with_secret(p: Platform, row: RepoLink, project: str, service: str, secret: str
                 ) -> RepoLinkSecret:
    public = _public(p, row, project, service)
    return RepoLinkSecret(**public.model_dump(), secret=secret)


def _check_url(p: Platform, url: str) -> None:
    if sources.is_local_git(url) and not p.settings.git_allow_local:
        raise Forbidden("repositories on the control plane's own disk are not allowed here; "
                        "use a remote URL, or set DOCKYARD_GIT_ALLOW_LOCAL=true")
    parts = urlsplit(url)
    if parts.password or (parts.scheme in ("http", "https") and parts.username):
        raise InvalidInput("put the repository's credential in `token`, not in the URL")


async def _check_dns_credential(s: AsyncSession, workspace_id: str, name: str | None) -> None:
    if name is None:
        return
    row = await s.scalar(select(ProviderCredential).where(
        ProviderCredential.workspace_id == workspace_id, ProviderCredential.name == name))
    if row is None or row.provider != "cloudflare":
        raise InvalidInput(f"preview_dns_credential {name!r} is not a Cloudflare credential "
                           "of this workspace; add it with `dockyard credentials set`")


def _credential(p: Platform, body: RepoLinkSet) -> tuple[str, str]:
    if body.token is not None:
        return "token", p.box.encrypt(body.token)
    if body.deploy_key is not None:
        return "deploy_key", p.box.encrypt(body.deploy_key)
    return "none", ""


async def _app(s: AsyncSession, actor: Actor, project: str, service: str) -> Service:
    found = await service_named(s, actor, project, service)
    if found.kind is not ServiceKind.APP or found.preview_of is not None:
        raise InvalidInput(f"{project}/{service} is not an app service; only apps are "
                           "deployed from a repository")
    return found


async def link(p: Platform, connect: Connect, actor: Actor, project: str, service: str,
               body: RepoLinkSet) -> RepoLinkSecret:
    """Link (or re-link) the service; a new secret each time, shown in the answer only.
    Previews turned off are taken down first (the answer names them)."""
    _check_url(p, body.repo_url)
    removed = [] if body.previews else await _close_previews(p, connect, actor, project,
                                                             service)
    secret = new_secret()
    kind, credential = _credential(p, body)

    async def tx(s: AsyncSession) -> RepoLinkSecret:
        actor.require(Permission.WRITE)
        found = await _app(s, actor, project, service)
        await _check_dns_credential(s, actor.workspace_id, body.preview_dns_credential)
        row = await s.scalar(select(RepoLink).where(RepoLink.service_id == found.id))
        row = row or RepoLink(workspace_id=actor.workspace_id, service_id=found.id)
        row.user_id, row.repo_url, row.repo_key = actor.user_id, body.repo_url, \
            repo_key(body.repo_url)
        row.branch, row.previews = body.branch, body.previews
        row.preview_dns_credential = body.preview_dns_credential or ""
        row.secret_ciphertext = p.box.encrypt(secret)
        row.credential_kind, row.credential_ciphertext = kind, credential
        s.add(row)
        await s.flush()
        return _with_secret(p, row, project, service, secret)

    answer = await p.db.write(tx, info=actor.audit_info)
    return answer.model_copy(update={"previews_removed": removed})


async def _linked(s: AsyncSession, actor: Actor, project: str, service: str) -> RepoLink:
    found = await service_named(s, actor, project, service)
    row = await s.scalar(select(RepoLink).where(RepoLink.service_id == found.id))
    if row is None:
        raise NotFound("repository link of service", f"{project}/{service}")
    return row


async def show(p: Platform, actor: Actor, project: str, service: str) -> RepoLinkPublic:
    async def tx(s: AsyncSession) -> RepoLinkPublic:
        actor.require(Permission.READ)
        return _public(p, await _linked(s, actor, project, service), project, service)

    return await p.db.read(tx)


async def rotate_secret(p: Platform, actor: Actor, project: str, service: str
                        ) -> RepoLinkSecret:
    secret = new_secret()

    async def tx(s: AsyncSession) -> RepoLinkSecret:
        actor.require(Permission.WRITE)
        row = await _linked(s, actor, project, service)
        row.secret_ciphertext = p.box.encrypt(secret)
        await s.flush()
        return _with_secret(p, row, project, service, secret)

    return await p.db.write(tx, info=actor.audit_info)


async def unlink(p: Platform, connect: Connect, actor: Actor, project: str, service: str
                 ) -> RepoUnlinked:
    """Take its previews down (nothing would close them later), then forget the link and its
    deliveries; the service and its releases stay."""
    removed = await _close_previews(p, connect, actor, project, service)

    async def tx(s: AsyncSession) -> None:
        actor.require(Permission.WRITE)
        row = await _linked(s, actor, project, service)
        await s.execute(delete(HookDelivery).where(HookDelivery.link_id == row.id))
        await s.delete(row)

    await p.db.write(tx, info=actor.audit_info)
    return RepoUnlinked(project=project, service=service, previews_removed=removed)


async def _close_previews(p: Platform, connect: Connect, actor: Actor, project: str,
                          service: str) -> list[str]:
    async def tx(s: AsyncSession) -> LinkInfo | None:
        actor.require(Permission.WRITE)
        found = await service_named(s, actor, project, service)
        row = await s.scalar(select(RepoLink).where(RepoLink.service_id == found.id))
        return link_info(row, project, service) if row else None

    found = await p.db.read(tx)
    return await close_all(p, connect, found, actor) if found else []


async def deliveries(p: Platform, actor: Actor, project: str, service: str
                     ) -> list[DeliveryPublic]:
    """The newest deliveries first."""

    async def tx(s: AsyncSession) -> list[DeliveryPublic]:
        actor.require(Permission.READ)
        row = await _linked(s, actor, project, service)
        rows = await s.scalars(select(HookDelivery).where(HookDelivery.link_id == row.id)
                               .order_by(HookDelivery.created_at.desc())
                               .limit(DELIVERIES_SHOWN))
        return [DeliveryPublic.model_validate(x) for x in rows]

    return await p.db.read(tx)


def link_info(row: RepoLink, project: str, service: str) -> LinkInfo:
    return LinkInfo(id=row.id, workspace_id=row.workspace_id, service_id=row.service_id,
                    user_id=row.user_id, project=project, service=service,
                    repo_url=row.repo_url, branch=row.branch, previews=row.previews,
                    preview_dns_credential=row.preview_dns_credential)
