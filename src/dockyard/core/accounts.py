"""A person's own account: changing the password, deleting the account."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.auth import limit, normalize_email, user_by_password
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.core.sessions import end_sessions
from dockyard.core.tokens import revoke_tokens_of_user
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, Forbidden
from dockyard.models.accounts import AccountDelete, PasswordChange, PasswordChanged
from dockyard.models.tables import Membership, User


async def change_password(
    p: Platform, actor: Actor, body: PasswordChange, client: str
) -> PasswordChanged:
    """Set a new password after checking the old one, and end every other session and token
    of the user; the credential making the request keeps working."""
    limit(p, "password", client, actor.user_id)

    async def check(s: AsyncSession) -> None:
        user = await s.get_one(User, actor.user_id)
        if not p.passwords.verify(user.password_hash, body.old_password):
            raise Forbidden("the old password is not correct")

    async def change(s: AsyncSession) -> PasswordChanged:
        user = await s.get_one(User, actor.user_id)
        user.password_hash = new_hash
        sessions = await end_sessions(s, actor.user_id, keep=actor.session_id)
        tokens = await revoke_tokens_of_user(s, actor.user_id, keep=actor.token_id)
        return PasswordChanged(sessions_ended=sessions, tokens_ended=tokens)

    await p.db.read(check)
    new_hash = p.passwords.hash(body.new_password)
    return await p.db.write(change, info=actor.audit_info)


async def delete_account(p: Platform, body: AccountDelete, client: str) -> None:
    """Delete an account that belongs to no workspace, given its email and password."""
    limit(p, "account", client, normalize_email(body.email))

    async def check(s: AsyncSession) -> str:
        return (await user_by_password(p, s, body.email, body.password)).id

    async def delete(s: AsyncSession) -> None:
        count = select(func.count()).where(Membership.user_id == user_id)
        if await s.scalar(count):
            raise Conflict("this account is still a member of a workspace; leave every "
                           "workspace first (`dockyard members remove` with your email)")
        await delete_recorded(s, await s.get_one(User, user_id))

    user_id = await p.db.read(check)
    await p.db.write(delete, info={"actor_user_id": user_id})
