"""Owner accounts: the first one on a fresh installation, and further ones by an operator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.auth import normalize_email
from dockyard.core.platform import Platform
from dockyard.kernel.errors import Conflict
from dockyard.models.emails import email_skeleton
from dockyard.models.enums import Role
from dockyard.models.tables import Membership, User, Workspace


@dataclass(frozen=True)
class FirstOwner:
    email: str
    password: str | None  # None when an owner existed already
    workspace: str


async def _create_owner(s: AsyncSession, email: str, password_hash: str, workspace: str) -> User:
    if await s.scalar(select(Workspace.id).where(Workspace.name == workspace)):
        raise Conflict(f"a workspace named {workspace!r} already exists")
    if await s.scalar(select(User.id).where(User.email_skeleton == email_skeleton(email))):
        raise Conflict(f"an account for {email} (or an address that looks like it) exists")
    user = User(email=email, password_hash=password_hash)
    space = Workspace(name=workspace, display_name=workspace)
    s.add_all([user, space])
    await s.flush()
    s.add(Membership(workspace_id=space.id, user_id=user.id, role=Role.OWNER))
    return user


async def create_owner(p: Platform, email: str, password: str, workspace: str) -> str:
    """A new user owning a new workspace; returns the user's id."""

    async def tx(s: AsyncSession) -> str:
        return (await _create_owner(s, normalize_email(email), hashed, workspace)).id

    hashed = p.passwords.hash(password)

    return await p.db.write(tx)


async def ensure_first_owner(
    p: Platform, email: str, password: str | None = None, workspace: str = "default"
) -> FirstOwner:
    """Create the owner and a workspace only when the installation has no user at all."""

    async def tx(s: AsyncSession) -> FirstOwner:
        if await s.scalar(select(func.count()).select_from(User)):
            first = await s.scalar(select(Workspace.name).order_by(Workspace.created_at))
            return FirstOwner(email=normalize_email(email), password=None, workspace=first or "")
        chosen = password or secrets.token_urlsafe(12)
        user = await _create_owner(s, normalize_email(email), p.passwords.hash(chosen), workspace)
        return FirstOwner(email=user.email, password=chosen, workspace=workspace)

    return await p.db.write(tx)
