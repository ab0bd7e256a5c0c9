"""Password login, bearer authentication (JWT or API token) and API token management."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.authz import Actor, Permission
from dockyard.core.platform import Platform
from dockyard.kernel.errors import Forbidden, NotAuthenticated, NotFound
from dockyard.kernel.security import (
    API_TOKEN_PREFIX,
    decode_jwt,
    hash_api_token,
    issue_jwt,
    new_api_token,
)
from dockyard.models.base import utcnow
from dockyard.models.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    TokenResponse,
    UserPublic,
    WhoAmI,
)
from dockyard.models.tables import ApiToken, Membership, User, Workspace

BAD_LOGIN = "incorrect email or password"
BAD_TOKEN = "missing, invalid or expired credentials; log in again"  # noqa: S105
LAST_USED_RESOLUTION = timedelta(minutes=1)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _limit(p: Platform, action: str, client: str, account: str) -> None:
    p.limiters.per_client.hit(f"{action}:client:{client}")
    p.limiters.per_account.hit(f"{action}:account:{account}")


async def _default_membership(s: AsyncSession, user_id: str) -> Membership | None:
    query = select(Membership).where(Membership.user_id == user_id)
    return (await s.scalars(query.order_by(Membership.created_at, Membership.id))).first()


async def login(p: Platform, email: str, password: str, client: str) -> TokenResponse:
    """Exchange email and password for a JWT bound to the user's first workspace."""
    email = normalize_email(email)
    _limit(p, "login", client, email)

    async def tx(s: AsyncSession) -> TokenResponse:
        user = await s.scalar(select(User).where(User.email == email))
        if not p.passwords.verify(user.password_hash if user else None, password):
            raise NotAuthenticated(BAD_LOGIN)
        if user is None or not user.is_active:
            raise NotAuthenticated(BAD_LOGIN)
        membership = await _default_membership(s, user.id)
        if membership is None:
            raise NotAuthenticated("this account is in no workspace; ask an owner to add you")
        lifetime = timedelta(minutes=p.settings.jwt_lifetime_minutes)
        return TokenResponse(
            access_token=issue_jwt(p.keys.jwt, user.id, membership.workspace_id, lifetime)
        )

    return await p.db.read(tx)


async def _membership(s: AsyncSession, user_id: str, workspace_id: str) -> Membership | None:
    query = select(Membership).join(User, User.id == Membership.user_id).where(
        Membership.user_id == user_id, Membership.workspace_id == workspace_id, User.is_active
    )
    return await s.scalar(query)


async def _actor_from_jwt(p: Platform, s: AsyncSession, token: str, workspace: str | None) -> Actor:
    claims = decode_jwt(p.keys.jwt, token)
    if claims is None:
        raise NotAuthenticated(BAD_TOKEN)
    membership = await _membership(s, claims["sub"], workspace or claims["wid"])
    if membership is None and workspace:
        raise NotFound("workspace", workspace)
    if membership is None:
        raise NotAuthenticated(BAD_TOKEN)
    return Actor(membership.user_id, membership.workspace_id, membership.role)


async def _actor_from_api_token(
    s: AsyncSession, token: str, workspace: str | None
) -> tuple[Actor, bool]:
    """The token's actor, and whether its last use is older than the recording resolution."""
    row = await s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_api_token(token)))
    now = utcnow()
    if row is None or row.revoked_at or (row.expires_at and row.expires_at <= now):
        raise NotAuthenticated(BAD_TOKEN)
    if workspace and workspace != row.workspace_id:
        raise Forbidden("this API token belongs to another workspace")
    membership = await _membership(s, row.user_id, row.workspace_id)
    if membership is None:
        raise NotAuthenticated(BAD_TOKEN)
    stale = row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION
    return Actor(row.user_id, row.workspace_id, membership.role, token_id=row.id), stale


async def authenticate(p: Platform, token: str, workspace: str | None = None) -> Actor:
    """The actor behind a bearer token, in `workspace` when given (else the token's own)."""

    async def tx(s: AsyncSession) -> tuple[Actor, bool]:
        if token.startswith(API_TOKEN_PREFIX):
            return await _actor_from_api_token(s, token, workspace)
        return await _actor_from_jwt(p, s, token, workspace), False

    actor, record_use = await p.db.read(tx)
    if record_use and actor.token_id:
        await _touch_token(p, actor.token_id)
    return actor


async def _touch_token(p: Platform, token_id: str) -> None:
    """Record use at one-minute resolution, so most reads do not turn into a write."""

    async def tx(s: AsyncSession) -> None:
        query = update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow())
        await s.execute(query.execution_options(synchronize_session=False))

    await p.db.write(tx)


async def create_api_token(
    p: Platform, actor: Actor, body: ApiTokenCreate, client: str
) -> ApiTokenCreated:
    """A new token for the caller in this workspace; its secret is returned only now."""
    _limit(p, "token", client, actor.user_id)
    secret = new_api_token()
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None

    async def tx(s: AsyncSession) -> ApiTokenCreated:
        row = ApiToken(
            workspace_id=actor.workspace_id, user_id=actor.user_id, name=body.name,
            prefix=secret[:10], token_hash=hash_api_token(secret), expires_at=expires,
        )
        s.add(row)
        await s.flush()
        return ApiTokenCreated(**ApiTokenPublic.model_validate(row).model_dump(), token=secret)

    return await p.db.write(tx, info=actor.audit_info)


async def list_api_tokens(p: Platform, actor: Actor) -> list[ApiTokenPublic]:
    async def tx(s: AsyncSession) -> list[ApiTokenPublic]:
        query = select(ApiToken).where(
            ApiToken.workspace_id == actor.workspace_id, ApiToken.user_id == actor.user_id
        )
        rows = await s.scalars(query.order_by(ApiToken.created_at))
        return [ApiTokenPublic.model_validate(r) for r in rows]

    return await p.db.read(tx)


async def revoke_api_token(p: Platform, actor: Actor, token_id: str) -> None:
    """Revoke one of the caller's tokens; admins may revoke any token of the workspace."""

    async def tx(s: AsyncSession) -> None:
        row = await s.get(ApiToken, token_id)
        mine = row is not None and row.user_id == actor.user_id
        if row is None or row.workspace_id != actor.workspace_id:
            raise NotFound("API token", token_id)
        if not mine:
            actor.require(Permission.MANAGE_MEMBERS)
        row.revoked_at = row.revoked_at or utcnow()

    await p.db.write(tx, info=actor.audit_info)


async def whoami(p: Platform, actor: Actor) -> WhoAmI:
    async def tx(s: AsyncSession) -> WhoAmI:
        user = await s.get_one(User, actor.user_id)
        workspace = await s.get_one(Workspace, actor.workspace_id)
        return WhoAmI(
            user=UserPublic.model_validate(user), workspace_id=workspace.id,
            workspace_name=workspace.name, role=actor.role, via_api_token=bool(actor.token_id),
        )

    return await p.db.read(tx)
