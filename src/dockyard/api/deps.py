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

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 (a path)
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
BearerDep = Annotated[str | None, Depends(_bearer)]
WorkspaceHeader = Annotated[fields.ObjectId | None, Header(
    alias="X-Dockyard-Workspace",
    description="Act in this workspace instead of the credential's default one.")]


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class _ActorBearer(OAuth2PasswordBearer):
    """The bearer scheme of the OpenAPI document that also resolves the actor behind the
    token: one dependency instead of three (the platform, the scheme, the actor), as
    FastAPI solves each dependency of each request anew."""

    async def __call__(  # type: ignore[override]
        self, request: Request, workspace: WorkspaceHeader = None
    ) -> Actor:
        token = await super().__call__(request)
        if not token:
            raise NotAuthenticated("authentication required: send 'Authorization: Bearer <token>'")
        actor = await auth.authenticate(request.app.state.platform, token, workspace)
        note_identity(actor.user_id, actor.workspace_id)
        return actor


get_actor = _ActorBearer(tokenUrl=TOKEN_URL, scheme_name=_bearer.scheme_name, auto_error=False)


PlatformDep = Annotated[Platform, Depends(get_platform)]
ActorDep = Annotated[Actor, Depends(get_actor)]
ClientDep = Annotated[str, Depends(client_address)]
