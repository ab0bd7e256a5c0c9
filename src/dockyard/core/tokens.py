"""API tokens and their lineage: a token never grants more than the credential that made it.

- Role: a token may carry a role cap no higher than its creator's role; the effective role
  is the lower of the member's role and the cap. A token made by a token inherits its cap.
- Life: a token made by a token expires no later than its parent and is revoked with it
  (revocation cascades to everything it minted). A token made from a login session expires
  with that session, unless the password is typed again with the request: then it carries
  the password's authority, outlives the session (so `dockyard login` can end its session)
  and ends when the password changes or the member leaves the workspace. A stolen login
  token (JWT) therefore cannot mint a credential that outlives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.auth import BAD_LOGIN, limit
from dockyard.core.authz import Actor, Permission, role_within
from dockyard.core.platform import Platform
from dockyard.kernel.errors import Forbidden, NotAuthenticated, NotFound
from dockyard.kernel.security import hash_api_token, new_api_token
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.schemas import ApiTokenCreate, ApiTokenCreated, ApiTokenPublic
from dockyard.models.tables import ApiToken, User, UserSession


def _cap(actor: Actor, wanted: Role | None) -> Role | None:
    if wanted is not None and not role_within(wanted, actor.role):
        raise Forbidden(f"a token cannot have the role '{wanted.value}': yours here is "
                        f"'{actor.role.value}'")
    return wanted or (actor.role if actor.token_id else None)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(a, b) if a and b else a or b


async def _live_parent(s: AsyncSession, token_id: str) -> ApiToken:
    """The creating token, locked so a concurrent revocation cannot miss the new child."""
    parent = await s.scalar(select(ApiToken).where(ApiToken.id == token_id).with_for_update())
    if parent is None or parent.revoked_at:
        raise NotAuthenticated("this API token was revoked; log in again")
    return parent


async def _password_proven(p: Platform, actor: Actor, password: str | None) -> bool:
    """Whether the caller typed the account's password again (checked outside any write)."""
    if password is None:
        return False

    async def tx(s: AsyncSession) -> bool:
        user = await s.get_one(User, actor.user_id)
        if not p.passwords.verify(user.password_hash, password):
            raise NotAuthenticated(BAD_LOGIN)
        return True

    return await p.db.read(tx)


async def _creator_ends(s: AsyncSession, actor: Actor, proven: bool) -> datetime | None:
    """When the credential making a token ends: its parent token's expiry, or its login
    session's unless the password was proven again (then nothing bounds it)."""
    if actor.token_id:
        return (await _live_parent(s, actor.token_id)).expires_at
    if proven or actor.session_id is None:
        return None
    return (await s.get_one(UserSession, actor.session_id)).expires_at


async def create_api_token(
    p: Platform, actor: Actor, body: ApiTokenCreate, client: str
) -> ApiTokenCreated:
    """A new token for the caller in this workspace; its secret is returned only now."""
    limit(p, "token", client, actor.user_id)
    secret, cap = new_api_token(), _cap(actor, body.role)
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    proven = await _password_proven(p, actor, body.password)

    async def tx(s: AsyncSession) -> ApiTokenCreated:
        row = ApiToken(
            workspace_id=actor.workspace_id, user_id=actor.user_id, name=body.name,
            prefix=secret[:10], token_hash=hash_api_token(secret), role=cap,
            expires_at=_earliest(expires, await _creator_ends(s, actor, proven)),
            parent_token_id=actor.token_id, session_id=actor.session_id,
        )
        s.add(row)
        await s.flush()
        return ApiTokenCreated(**ApiTokenPublic.model_validate(row).model_dump(), token=secret)

    return await p.db.write(tx, info=actor.audit_info)


async def list_api_tokens(p: Platform, actor: Actor) -> list[ApiTokenPublic]:
    async def tx(s: AsyncSession) -> list[ApiTokenPublic]:
        query = select(ApiToken).where(
            ApiToken.workspace_id == actor.workspace_id, ApiToken.user_id == actor.user_id
        )
        rows = await s.scalars(query.order_by(ApiToken.created_at))
        return [ApiTokenPublic.model_validate(r) for r in rows]

    return await p.db.read(tx)


async def revoke_api_token(p: Platform, actor: Actor, token_id: str) -> None:
    """Revoke one of the caller's tokens and all it minted; admins may revoke any token of the
    workspace."""

    async def tx(s: AsyncSession) -> None:
        row = await s.get(ApiToken, token_id)
        if row is None or row.workspace_id != actor.workspace_id:
            raise NotFound("API token", token_id)
        if row.user_id != actor.user_id:
            actor.require(Permission.MANAGE_MEMBERS)
        await revoke_tokens(s, [row.id])

    await p.db.write(tx, info=actor.audit_info)


async def _with_descendants(s: AsyncSession, roots: Iterable[str]) -> set[str]:
    found = frontier = set(roots)
    while frontier:
        query = select(ApiToken.id).where(ApiToken.parent_token_id.in_(frontier))
        frontier = set(await s.scalars(query)) - found
        found = found | frontier
    return found


async def revoke_tokens(s: AsyncSession, roots: Iterable[str]) -> int:
    """Revoke these tokens and every token minted from them; returns how many were live."""
    return await _revoke(s, await _with_descendants(s, roots))


async def revoke_tokens_of_user(s: AsyncSession, user_id: str, keep: str | None) -> int:
    """Revoke every token of the user in every workspace, except `keep`: the credential that
    proved the old password and set the new one. It now stands on the new password's
    authority, so it is detached from the (revoked) token that minted it."""
    query = select(ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.id != (keep or ""))
    ended = await _revoke(s, set(await s.scalars(query)))
    kept = await s.get(ApiToken, keep) if keep else None
    if kept is not None:
        kept.parent_token_id = None
    return ended


async def _revoke(s: AsyncSession, ids: set[str]) -> int:
    now = utcnow()
    query = select(ApiToken).where(ApiToken.id.in_(ids), ApiToken.revoked_at.is_(None))
    live = 0
    for row in await s.scalars(query):
        live += row.expires_at is None or row.expires_at > now
        row.revoked_at = now
    return live
