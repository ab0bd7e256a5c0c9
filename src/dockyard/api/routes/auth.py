from typing import Annotated

from fastapi import APIRouter, Form

from dockyard.api.deps import ActorDep, ClientDep, PlatformDep
from dockyard.api.errors import LIMITED_RESPONSES
from dockyard.api.routes.params import ObjectId
from dockyard.core import auth
from dockyard.models.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    TokenResponse,
    WhoAmI,
)

router = APIRouter(prefix="/auth", tags=["auth"], responses=LIMITED_RESPONSES)
NO_CONTROL = r"^[^\u0000-\u001f]*$"


@router.post("/token", summary="Log in with email and password (OAuth2 password flow)")
async def token(
    platform: PlatformDep, client: ClientDep,
    username: Annotated[str, Form(min_length=1, max_length=320, pattern=NO_CONTROL)],
    password: Annotated[str, Form(min_length=1, max_length=256, pattern=NO_CONTROL)],
) -> TokenResponse:
    return await auth.login(platform, username, password, client)


@router.get("/tokens", summary="List your API tokens in this workspace")
async def list_tokens(platform: PlatformDep, actor: ActorDep) -> list[ApiTokenPublic]:
    return await auth.list_api_tokens(platform, actor)


@router.post("/tokens", status_code=201, summary="Create an API token (shown once)")
async def create_token(
    body: ApiTokenCreate, platform: PlatformDep, actor: ActorDep, client: ClientDep
) -> ApiTokenCreated:
    return await auth.create_api_token(platform, actor, body, client)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(token_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> None:
    await auth.revoke_api_token(platform, actor, token_id)


@router.get("/me", summary="Who you are, and in which workspace with which role")
async def me(platform: PlatformDep, actor: ActorDep) -> WhoAmI:
    return await auth.whoami(platform, actor)
