"""Workspaces (tenants) and their members (people join by invitation: core.invitations)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.errors import Conflict, NotFound
from dockyard.models.enums import Role
from dockyard.models.schemas import (
    MemberPublic,
    MemberUpdate,
    WorkspaceCreate,
    WorkspacePublic,
    WorkspaceUpdate,
)
from dockyard.models.tables import Membership, User, Workspace


def _public(workspace: Workspace, role: Role) -> WorkspacePublic:
    return WorkspacePublic(
        id=workspace.id, name=workspace.name, display_name=workspace.display_name,
        role=role, created_at=workspace.created_at,
    )


async def list_workspaces(p: Platform, actor: Actor) -> list[WorkspacePublic]:
    """Every workspace the caller belongs to, with the caller's role in each."""

    async def tx(s: AsyncSession) -> list[WorkspacePublic]:
        query = select(Workspace, Membership.role).join(
            Membership, Membership.workspace_id == Workspace.id
        ).where(Membership.user_id == actor.user_id)
        rows = await s.execute(query.order_by(Workspace.created_at, Workspace.id))
        return [_public(w, role) for w, role in rows]

    return await p.db.read(tx)


async def create_workspace(p: Platform, actor: Actor, body: WorkspaceCreate) -> WorkspacePublic:
    """A new workspace owned by the caller."""

    async def tx(s: AsyncSession) -> WorkspacePublic:
        if await s.scalar(select(Workspace.id).where(Workspace.name == body.name)):
            raise Conflict(f"a workspace named {body.name!r} already exists; choose another name")
        workspace = Workspace(name=body.name, display_name=body.display_name)
        s.add(workspace)
        await s.flush()
        s.add(Membership(workspace_id=workspace.id, user_id=actor.user_id, role=Role.OWNER))
        return _public(workspace, Role.OWNER)

    return await p.db.write(tx, info=actor.audit_info)


async def own_workspace(s: AsyncSession, actor: Actor, workspace_id: str) -> Workspace:
    """The workspace the actor is acting in; any other id is reported as not found."""
    workspace = await s.get(Workspace, workspace_id)
    if workspace is None or workspace.id != actor.workspace_id:
        raise NotFound("workspace", workspace_id)
    return workspace


async def get_workspace(p: Platform, actor: Actor, workspace_id: str) -> WorkspacePublic:
    async def tx(s: AsyncSession) -> WorkspacePublic:
        return _public(await own_workspace(s, actor, workspace_id), actor.role)

    return await p.db.read(tx)


async def update_workspace(
    p: Platform, actor: Actor, workspace_id: str, body: WorkspaceUpdate
) -> WorkspacePublic:
    async def tx(s: AsyncSession) -> WorkspacePublic:
        workspace = await own_workspace(s, actor, workspace_id)
        actor.require(Permission.MANAGE_WORKSPACE)
        if body.display_name is not None:
            workspace.display_name = body.display_name
        return _public(workspace, actor.role)

    return await p.db.write(tx, info=actor.audit_info)


async def delete_workspace(p: Platform, actor: Actor, workspace_id: str) -> None:
    """Delete the workspace and everything in it (owners only)."""

    async def tx(s: AsyncSession) -> None:
        workspace = await own_workspace(s, actor, workspace_id)
        actor.require(Permission.MANAGE_WORKSPACE)
        await delete_recorded(s, workspace)

    await p.db.write(tx, info=actor.audit_info)


async def list_members(p: Platform, actor: Actor, workspace_id: str) -> list[MemberPublic]:
    async def tx(s: AsyncSession) -> list[MemberPublic]:
        await own_workspace(s, actor, workspace_id)
        query = select(Membership, User.email).join(User, User.id == Membership.user_id)
        query = query.where(Membership.workspace_id == workspace_id)
        rows = await s.execute(query.order_by(Membership.created_at, Membership.id))
        return [_member(m, email) for m, email in rows]

    return await p.db.read(tx)


def _member(m: Membership, email: str) -> MemberPublic:
    return MemberPublic(user_id=m.user_id, email=email, role=m.role, created_at=m.created_at)


def require_grant(actor: Actor, *roles: Role) -> None:
    """The actor may manage members, and grant owner when one of `roles` is owner."""
    actor.require(Permission.MANAGE_MEMBERS)
    if Role.OWNER in roles:
        actor.require(Permission.GRANT_OWNER)


async def find_membership(s: AsyncSession, workspace_id: str, user_id: str) -> Membership | None:
    query = select(Membership).where(
        Membership.workspace_id == workspace_id, Membership.user_id == user_id
    )
    return await s.scalar(query)


async def _existing_member(s: AsyncSession, workspace_id: str, user_id: str) -> Membership:
    membership = await find_membership(s, workspace_id, user_id)
    if membership is None:
        raise NotFound("member", user_id)
    return membership


async def _ensure_owner_remains(s: AsyncSession, membership: Membership) -> None:
    query = select(func.count()).where(
        Membership.workspace_id == membership.workspace_id, Membership.role == Role.OWNER
    )
    if membership.role is Role.OWNER and (await s.scalar(query) or 0) <= 1:
        raise Conflict("a workspace needs at least one owner; make someone else owner first")


async def update_member(
    p: Platform, actor: Actor, workspace_id: str, user_id: str, body: MemberUpdate
) -> MemberPublic:
    async def tx(s: AsyncSession) -> MemberPublic:
        await own_workspace(s, actor, workspace_id)
        membership = await _existing_member(s, workspace_id, user_id)
        require_grant(actor, membership.role, body.role)
        if body.role is not Role.OWNER:
            await _ensure_owner_remains(s, membership)
        membership.role = body.role
        email = await s.scalar(select(User.email).where(User.id == user_id))
        return _member(membership, email or "")

    return await p.db.write(tx, info=actor.audit_info)


async def remove_member(p: Platform, actor: Actor, workspace_id: str, user_id: str) -> None:
    async def tx(s: AsyncSession) -> None:
        await own_workspace(s, actor, workspace_id)
        membership = await _existing_member(s, workspace_id, user_id)
        if user_id != actor.user_id:
            require_grant(actor, membership.role)
        await _ensure_owner_remains(s, membership)
        await delete_recorded(s, membership)

    await p.db.write(tx, info=actor.audit_info)
