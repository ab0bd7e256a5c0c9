"""Request dependencies: the platform, the authenticated actor, the client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer

from dockyard.core import auth
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.kernel.errors import NotAuthenticated
from dockyard.kernel.metrics.record import note_identity
from dockyard.models import fields

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
BearerDep = Annotated[str | None, Depends(_bearer)]
WorkspaceHeader = Annotated[fields.ObjectId | None, Header(
    alias="X-Dockyard-Workspace",
    description="Act in this workspace instead of the credential's default one.")]


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def get_actor(
    platform: Annotated[Platform, Depends(get_platform)],
    token: BearerDep,
    workspace: WorkspaceHeader = None,
) -> Actor:
    if not token:
        raise NotAuthenticated("authentication required: send 'Authorization: Bearer <token>'")
    actor = await auth.authenticate(platform, token, workspace)
    note_identity(actor.user_id, actor.workspace_id)
    return actor


PlatformDep = Annotated[Platform, Depends(get_platform)]
ActorDep = Annotated[Actor, Depends(get_actor)]
ClientDep = Annotated[str, Depends(client_address)]
