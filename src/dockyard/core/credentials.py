"""Cloud provider tokens of a workspace: encrypted at rest, never shown again once stored."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import NotFound
from dockyard.models.fields import MASK
from dockyard.models.schemas import CredentialPublic, CredentialSet
from dockyard.models.tables import ProviderCredential


def _public(row: ProviderCredential) -> CredentialPublic:
    return CredentialPublic(
        name=row.name, provider=row.provider, token=MASK, updated_at=row.updated_at
    )


async def _named(s: AsyncSession, workspace_id: str, name: str) -> ProviderCredential | None:
    query = select(ProviderCredential).where(
        ProviderCredential.workspace_id == workspace_id, ProviderCredential.name == name
    )
    return await s.scalar(query)


async def list_credentials(p: Platform, actor: Actor) -> list[CredentialPublic]:
    async def tx(s: AsyncSession) -> list[CredentialPublic]:
        actor.require(Permission.READ)
        query = select(ProviderCredential).where(
            ProviderCredential.workspace_id == actor.workspace_id
        )
        return [_public(r) for r in await s.scalars(query.order_by(ProviderCredential.name))]

    return await p.db.read(tx)


async def set_credential(
    p: Platform, actor: Actor, name: str, body: CredentialSet
) -> CredentialPublic:
    """Store or replace a provider token (admins)."""
    ciphertext = p.box.encrypt(body.token)

    async def tx(s: AsyncSession) -> CredentialPublic:
        actor.require(Permission.MANAGE_SERVERS)
        row = await _named(s, actor.workspace_id, name) or ProviderCredential(
            workspace_id=actor.workspace_id, name=name
        )
        row.provider, row.token_ciphertext = body.provider, ciphertext
        s.add(row)
        await s.flush()
        return _public(row)

    return await p.db.write(tx, info=actor.audit_info)


async def delete_credential(p: Platform, actor: Actor, name: str) -> None:
    async def tx(s: AsyncSession) -> None:
        row = await _named(s, actor.workspace_id, name)
        if row is None:
            raise NotFound("credential", name)
        actor.require(Permission.MANAGE_SERVERS)
        await delete_recorded(s, row)

    await p.db.write(tx, info=actor.audit_info)


async def provider_token(p: Platform, workspace_id: str, name: str) -> str:
    """The plain token, for the provider clients only (never for an API answer)."""

    async def tx(s: AsyncSession) -> str:
        row = await _named(s, workspace_id, name)
        if row is None:
            raise NotFound("credential", name)
        return p.box.decrypt(row.token_ciphertext)

    return await p.db.read(tx)
