from typing import Annotated

from fastapi import Form, Header

from dockyard.api.deps import ActorDep, ClientDep, PlatformDep
from dockyard.api.errors import LIMITED_RESPONSES
from dockyard.api.routes.params import ObjectId
from dockyard.api.routing import api_router
from dockyard.core import accounts, auth, sessions, tokens
from dockyard.models import fields
from dockyard.models.accounts import AccountDelete, PasswordChange, PasswordChanged, SessionPublic
from dockyard.models.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    TokenResponse,
    WhoAmI,
)

router = api_router(prefix="/auth", tags=["auth"], responses=LIMITED_RESPONSES)


@router.post("/token", operation_id="log_in",
             summary="Log in with email and password (OAuth2 password flow)")
async def token(
    platform: PlatformDep, client: ClientDep,
    username: Annotated[fields.LoginName, Form()],
    password: Annotated[fields.AnyPassword, Form()],
    user_agent: Annotated[str, Header(max_length=1000)] = "",
) -> TokenResponse:
    return await auth.login(platform, username, password, client, user_agent)


@router.post("/logout", status_code=204, operation_id="logout",
             summary="End the credential of this request (its login session or API token)")
async def logout(platform: PlatformDep, actor: ActorDep) -> None:
    await sessions.logout(platform, actor)


@router.get("/sessions", operation_id="list_sessions",
            summary="List your live login sessions")
async def list_sessions(platform: PlatformDep, actor: ActorDep) -> list[SessionPublic]:
    return await sessions.list_sessions(platform, actor)


@router.delete("/sessions/{session_id}", status_code=204, operation_id="revoke_session",
               summary="End one of your login sessions")
async def revoke_session(session_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> None:
    await sessions.revoke_session(platform, actor, session_id)


@router.post("/password", operation_id="change_password",
             summary="Change your password; ends your other sessions and API tokens")
async def change_password(
    body: PasswordChange, platform: PlatformDep, actor: ActorDep, client: ClientDep
) -> PasswordChanged:
    return await accounts.change_password(platform, actor, body, client)


@router.delete("/account", status_code=204, operation_id="delete_account",
               summary="Delete your account (email and password; only when in no workspace)")
async def delete_account(body: AccountDelete, platform: PlatformDep, client: ClientDep) -> None:
    await accounts.delete_account(platform, body, client)


@router.get("/tokens", operation_id="list_tokens",
            summary="List your API tokens in this workspace")
async def list_tokens(platform: PlatformDep, actor: ActorDep) -> list[ApiTokenPublic]:
    return await tokens.list_api_tokens(platform, actor)


@router.post("/tokens", status_code=201, operation_id="create_token",
             summary="Create an API token (shown once)")
async def create_token(
    body: ApiTokenCreate, platform: PlatformDep, actor: ActorDep, client: ClientDep
) -> ApiTokenCreated:
    return await tokens.create_api_token(platform, actor, body, client)


@router.delete("/tokens/{token_id}", operation_id="revoke_token", status_code=204,
               summary="Revoke an API token and every token it created")
async def revoke_token(token_id: ObjectId, platform: PlatformDep, actor: ActorDep) -> None:
    await tokens.revoke_api_token(platform, actor, token_id)


@router.get("/me", operation_id="who_am_i",
            summary="Who you are, and in which workspace with which role")
async def me(platform: PlatformDep, actor: ActorDep) -> WhoAmI:
    return await auth.whoami(platform, actor)
