from typing import Annotated

from fastapi import Depends

from dockyard.api.deps import BearerDep, ClientDep, PlatformDep, WorkspaceHeader
from dockyard.api.errors import LIMITED_RESPONSES
from dockyard.api.routing import api_router
from dockyard.core import auth, invitations
from dockyard.core.authz import Actor
from dockyard.models.accounts import InvitationAccept, InvitationAccepted
from dockyard.models.schemas import ErrorBody

GONE = {"model": ErrorBody, "description": "The invitation was used, revoked or has expired."}
router = api_router(prefix="/invitations", tags=["workspaces"],
                   responses={**LIMITED_RESPONSES, 410: GONE})
async def optional_actor(
    platform: PlatformDep, token: BearerDep, workspace: WorkspaceHeader = None
) -> Actor | None:
    return await auth.authenticate(platform, token, workspace) if token else None


@router.post("/accept", operation_id="accept_invitation",
             summary="Accept an invitation: logged in, with your password, or as a new account")
async def accept_invitation(
    body: InvitationAccept, platform: PlatformDep, client: ClientDep,
    actor: Annotated[Actor | None, Depends(optional_actor)],
) -> InvitationAccepted:
    return await invitations.accept_invitation(platform, actor, body, client)
