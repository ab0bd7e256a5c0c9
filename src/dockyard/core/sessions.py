"""Login sessions: every JWT names one (`sid`) and works only while it is live."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.core.tokens import revoke_tokens
from dockyard.kernel.errors import NotFound
from dockyard.models.accounts import SessionPublic
from dockyard.models.base import utcnow
from dockyard.models.tables import UserSession


def _live(user_id: str) -> Select[UserSession]:
    return select(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None),
        UserSession.expires_at > utcnow(),
    )


async def list_sessions(p: Platform, actor: Actor) -> list[SessionPublic]:
    """The caller's live login sessions, oldest first."""

    async def tx(s: AsyncSession) -> list[SessionPublic]:
        rows = await s.scalars(_live(actor.user_id).order_by(UserSession.created_at))
        return [SessionPublic.model_validate({**_fields(r), "current": r.id == actor.session_id})
                for r in rows]

    return await p.db.read(tx)


def _fields(row: UserSession) -> dict[str, object]:
    return {k: getattr(row, k) for k in SessionPublic.model_fields if k != "current"}


async def revoke_session(p: Platform, actor: Actor, session_id: str) -> None:
    """End one of the caller's own login sessions (its JWT stops working at once)."""

    async def tx(s: AsyncSession) -> None:
        row = await s.get(UserSession, session_id)
        if row is None or row.user_id != actor.user_id:
            raise NotFound("session", session_id)
        row.revoked_at = row.revoked_at or utcnow()

    await p.db.write(tx, info=actor.audit_info)


async def logout(p: Platform, actor: Actor) -> None:
    """End the credential making the request: its login session, or its API token (and what
    the token minted)."""

    async def tx(s: AsyncSession) -> None:
        if actor.token_id:
            await revoke_tokens(s, [actor.token_id])
        elif actor.session_id:
            await end_sessions(s, actor.user_id, keep=None, only=actor.session_id)

    await p.db.write(tx, info=actor.audit_info)


async def end_sessions(
    s: AsyncSession, user_id: str, keep: str | None, only: str | None = None
) -> int:
    """End the user's live sessions (all but `keep`, or just `only`); returns how many."""
    query = _live(user_id)
    query = query.where(UserSession.id == only) if only else query
    rows = [r for r in await s.scalars(query) if r.id != keep]
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)
