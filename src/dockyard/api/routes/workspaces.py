from dockyard.api.deps import ActorDep, PlatformDep
from dockyard.api.errors import WRITE_RESPONSES
from dockyard.api.routes.params import ObjectId
from dockyard.api.routing import api_router
from dockyard.core import invitations, workspaces
from dockyard.models.accounts import InvitationCreate, InvitationCreated, InvitationPublic
from dockyard.models.schemas import (
    MemberPublic,
    MemberUpdate,
    WorkspaceCreate,
    WorkspacePublic,
    WorkspaceUpdate,
)

router = api_router(prefix="/workspaces", tags=["workspaces"], responses=WRITE_RESPONSES)


@router.get("", operation_id="list_workspaces",
            summary="List the workspaces you belong to")
async def list_workspaces(platform: PlatformDep, actor: ActorDep) -> list[WorkspacePublic]:
    return await workspaces.list_workspaces(platform, actor)


@router.post("", status_code=201, operation_id="create_workspace",
             summary="Create a workspace you own")
async def create_workspace(
    body: WorkspaceCreate, platform: PlatformDep, actor: ActorDep
) -> WorkspacePublic:
    return await workspaces.create_workspace(platform, actor, body)


@router.get("/{workspace_id}", operation_id="get_workspace",
            summary="Show the current workspace")
async def get_workspace(
    workspace_id: ObjectId, platform: PlatformDep, actor: ActorDep
) -> WorkspacePublic:
    return await workspaces.get_workspace(platform, actor, workspace_id)


@router.patch("/{workspace_id}", operation_id="update_workspace",
              summary="Change the current workspace (owners)")
async def update_workspace(
    workspace_id: ObjectId, body: WorkspaceUpdate, platform: PlatformDep, actor: ActorDep
) -> WorkspacePublic:
    return await workspaces.update_workspace(platform, actor, workspace_id, body)


@router.delete("/{workspace_id}", status_code=204, operation_id="delete_workspace",
               summary="Delete the workspace (owners)")
async def delete_workspace(workspace_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> None:
    await workspaces.delete_workspace(platform, actor, workspace_id)


@router.get("/{workspace_id}/members", operation_id="list_members", summary="List members")
async def list_members(
    workspace_id: ObjectId, platform: PlatformDep, actor: ActorDep
) -> list[MemberPublic]:
    return await workspaces.list_members(platform, actor, workspace_id)


@router.post("/{workspace_id}/invitations", status_code=201, operation_id="invite",
             summary="Invite an email with a role (admins); the secret is shown once")
async def invite(
    workspace_id: ObjectId, body: InvitationCreate, platform: PlatformDep, actor: ActorDep
) -> InvitationCreated:
    return await invitations.invite(platform, actor, workspace_id, body)


@router.get("/{workspace_id}/invitations", operation_id="list_invitations",
            summary="List pending invitations (admins)")
async def list_invitations(
    workspace_id: ObjectId, platform: PlatformDep, actor: ActorDep
) -> list[InvitationPublic]:
    return await invitations.list_invitations(platform, actor, workspace_id)


@router.delete("/{workspace_id}/invitations/{invitation_id}", status_code=204,
               operation_id="revoke_invitation", summary="Revoke a pending invitation (admins)")
async def revoke_invitation(
    workspace_id: ObjectId, invitation_id: ObjectId, platform: PlatformDep, actor: ActorDep
) -> None:
    await invitations.revoke_invitation(platform, actor, workspace_id, invitation_id)


@router.patch("/{workspace_id}/members/{user_id}", operation_id="update_member",
              summary="Change a member's role (admins)")
async def update_member(
    workspace_id: ObjectId, user_id: ObjectId, body: MemberUpdate,
    platform: PlatformDep, actor: ActorDep,
) -> MemberPublic:
    return await workspaces.update_member(platform, actor, workspace_id, user_id, body)


@router.delete("/{workspace_id}/members/{user_id}", status_code=204, operation_id="remove_member",
               summary="Remove a member (admins; anyone may remove themselves)")
async def remove_member(
    workspace_id: ObjectId, user_id: ObjectId, platform: PlatformDep, actor: ActorDep
) -> None:
    await workspaces.remove_member(platform, actor, workspace_id, user_id)
