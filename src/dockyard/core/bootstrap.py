"""The first owner account and workspace, created once on a fresh installation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.auth import normalize_email
from dockyard.core.platform import Platform
from dockyard.kernel.security import hash_password
from dockyard.models.enums import Role
from dockyard.models.tables import Membership, User, Workspace


@dataclass(frozen=True)
class FirstOwner:
    email: str
    password: str | None  # None when an owner existed already
    workspace: str


async def ensure_first_owner(
    p: Platform, email: str, password: str | None = None, workspace: str = "default"
) -> FirstOwner:
    """Create the owner and a workspace only when the installation has no user at all."""

    async def tx(s: AsyncSession) -> FirstOwner:
        if await s.scalar(select(func.count()).select_from(User)):
            first = await s.scalar(select(Workspace.name).order_by(Workspace.created_at))
            return FirstOwner(email=normalize_email(email), password=None, workspace=first or "")
        chosen = password or secrets.token_urlsafe(12)
        user = User(email=normalize_email(email), password_hash=hash_password(chosen))
        space = Workspace(name=workspace, display_name="Default workspace")
        s.add_all([user, space])
        await s.flush()
        s.add(Membership(workspace_id=space.id, user_id=user.id, role=Role.OWNER))
        return FirstOwner(email=user.email, password=chosen, workspace=space.name)

    return await p.db.write(tx)
