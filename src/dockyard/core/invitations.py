"""Joining a workspace: by a single-use, expiring invitation that the invited person accepts.

Nobody chooses another person's password, and inviting never tells whether an account with
the address exists: the answer is the same either way.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.auth import limit, user_by_password
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.core.workspaces import find_membership, own_workspace, require_grant
from dockyard.kernel.errors import Conflict, DockyardError, Forbidden, InvalidInput, NotFound
from dockyard.kernel.security import hash_api_token, new_invitation_token
from dockyard.models.accounts import (
    InvitationAccept,
    InvitationAccepted,
    InvitationCreate,
    InvitationCreated,
    InvitationPublic,
)
from dockyard.models.base import utcnow
from dockyard.models.emails import email_skeleton
from dockyard.models.tables import Invitation, Membership, User, Workspace

MIN_PASSWORD = 8


class InvitationGone(DockyardError):
    """The invitation existed but can no longer be used."""

    status_code = 410


async def invite(
    p: Platform, actor: Actor, workspace_id: str, body: InvitationCreate
) -> InvitationCreated:
    """A new invitation; its secret and link are in this answer only."""
    secret = new_invitation_token()
    lifetime = timedelta(days=p.settings.invitation_lifetime_days)

    async def tx(s: AsyncSession) -> InvitationCreated:
        await own_workspace(s, actor, workspace_id)
        require_grant(actor, body.role)
        await _refuse_current_member(s, workspace_id, body.email)
        row = Invitation(
            workspace_id=workspace_id, email=body.email, role=body.role, prefix=secret[:10],
            token_hash=hash_api_token(secret), invited_by=actor.user_id,
            expires_at=utcnow() + lifetime,
        )
        s.add(row)
        await s.flush()
        link = f"{p.settings.api_url.rstrip('/')}/invite#{secret}"
        public = InvitationPublic.model_validate(row).model_dump()
        return InvitationCreated(**public, token=secret, link=link)

    return await p.db.write(tx, info=actor.audit_info)


async def _refuse_current_member(s: AsyncSession, workspace_id: str, email: str) -> None:
    """Members of this workspace are listed to the inviter anyway; nothing else is told."""
    query = select(Membership.id).join(User, User.id == Membership.user_id).where(
        Membership.workspace_id == workspace_id, User.email == email
    )
    if await s.scalar(query):
        raise Conflict(f"{email} is already a member of this workspace")


def _pending(workspace_id: str) -> Select[Invitation]:
    return select(Invitation).where(
        Invitation.workspace_id == workspace_id, Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None), Invitation.expires_at > utcnow(),
    )


async def list_invitations(p: Platform, actor: Actor, workspace_id: str) -> list[InvitationPublic]:
    """Pending invitations (not accepted, revoked or expired), without their secrets."""

    async def tx(s: AsyncSession) -> list[InvitationPublic]:
        await own_workspace(s, actor, workspace_id)
        require_grant(actor)
        rows = await s.scalars(_pending(workspace_id).order_by(Invitation.created_at))
        return [InvitationPublic.model_validate(r) for r in rows]

    return await p.db.read(tx)


async def revoke_invitation(
    p: Platform, actor: Actor, workspace_id: str, invitation_id: str
) -> None:
    async def tx(s: AsyncSession) -> None:
        await own_workspace(s, actor, workspace_id)
        row = await s.get(Invitation, invitation_id)
        if row is None or row.workspace_id != workspace_id:
            raise NotFound("invitation", invitation_id)
        require_grant(actor, row.role)
        if row.accepted_at:
            raise Conflict("this invitation was accepted already; remove the member instead")
        row.revoked_at = row.revoked_at or utcnow()

    await p.db.write(tx, info=actor.audit_info)


async def _usable(s: AsyncSession, token: str) -> Invitation:
    query = select(Invitation).where(Invitation.token_hash == hash_api_token(token))
    row = await s.scalar(query.with_for_update())
    if row is None:
        raise NotFound("invitation", token[:10] + "...")
    if row.accepted_at:
        raise InvitationGone("this invitation was used already; ask for a new one")
    if row.revoked_at:
        raise InvitationGone("this invitation was revoked; ask for a new one")
    if row.expires_at <= utcnow():
        raise InvitationGone("this invitation has expired; ask for a new one")
    return row


async def accept_invitation(
    p: Platform, actor: Actor | None, body: InvitationAccept, client: str
) -> InvitationAccepted:
    """Join the invitation's workspace: as the logged-in account with the invited address, as
    the existing account given its password, or as a new account with the password chosen
    here. The invitation is used up."""
    limit(p, "accept", client, body.token[:16])

    async def check(s: AsyncSession) -> str | None:
        invitation = await _usable(s, body.token)
        return await _accepting_user(p, s, actor, invitation.email, body.password)

    user_id = await p.db.read(check)  # password checks and hashing hold no write lock
    new_hash = None if user_id else p.passwords.hash(body.password or "")

    async def join(s: AsyncSession) -> InvitationAccepted:
        invitation = await _usable(s, body.token)
        user = await s.get_one(User, user_id) if user_id else await _new_user(s, invitation,
                                                                              new_hash or "")
        return await _join(s, invitation, user, created=user_id is None)

    return await p.db.write(join, info={"actor_user_id": user_id})


async def _accepting_user(
    p: Platform, s: AsyncSession, actor: Actor | None, email: str, password: str | None
) -> str | None:
    """The id of the account that accepts, or None when a new one is to be created."""
    existing = await s.scalar(select(User).where(User.email == email))
    if actor is not None:
        if existing is None or existing.id != actor.user_id:
            raise Forbidden("this invitation is for another address; log out, or log in as the "
                            "invited account, and accept again")
        return actor.user_id
    if existing is not None:
        if not password:
            raise InvalidInput("an account with the invited address exists: log in as it (or "
                               "give its password) to accept")
        return (await user_by_password(p, s, email, password)).id
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(f"choose a password of at least {MIN_PASSWORD} characters for "
                           "your new account")
    return None


async def _new_user(s: AsyncSession, invitation: Invitation, password_hash: str) -> User:
    skeleton = email_skeleton(invitation.email)
    if await s.scalar(select(User.id).where(User.email_skeleton == skeleton)):
        raise Conflict("an account with a look-alike address exists; ask whoever invited "
                       "you to check the address")
    user = User(email=invitation.email, password_hash=password_hash)
    s.add(user)
    await s.flush()
    return user


async def _join(
    s: AsyncSession, invitation: Invitation, user: User, created: bool
) -> InvitationAccepted:
    if await find_membership(s, invitation.workspace_id, user.id):
        raise Conflict("you are a member of this workspace already")
    s.add(Membership(workspace_id=invitation.workspace_id, user_id=user.id, role=invitation.role))
    invitation.accepted_at, invitation.accepted_by = utcnow(), user.id
    workspace = await s.get_one(Workspace, invitation.workspace_id)
    return InvitationAccepted(
        user_id=user.id, email=user.email, workspace_id=workspace.id,
        workspace_name=workspace.name, role=invitation.role, account_created=created,
    )
