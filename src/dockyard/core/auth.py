"""Password login, bearer authentication (JWT with its login session, or API token)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from dockyard.core.auth_cache import Credential, cache_key
from dockyard.core.authz import Actor, effective_role
from dockyard.core.platform import Platform
from dockyard.kernel.audit import delete_recorded
from dockyard.kernel.db import UNWATCHED
from dockyard.kernel.errors import Forbidden, NotAuthenticated, NotFound
from dockyard.kernel.security import API_TOKEN_PREFIX, decode_jwt, hash_api_token, issue_jwt
from dockyard.models.base import utcnow
from dockyard.models.emails import normalize_email
from dockyard.models.schemas import TokenResponse, UserPublic, WhoAmI
from dockyard.models.tables import ApiToken, Membership, User, UserSession, Workspace

__all__ = ["authenticate", "limit", "login", "normalize_email", "user_by_password", "whoami"]

BAD_LOGIN = "incorrect email or password"
BAD_TOKEN = "missing, invalid or expired credentials; log in again"  # noqa: S105
LAST_USED_RESOLUTION = timedelta(minutes=1)
FORGET_SESSIONS_AFTER = timedelta(days=30)


def limit(p: Platform, action: str, client: str, account: str) -> None:
    """Count an attempt against the per-client and per-account rate limits."""
    p.limiters.per_client.hit(f"{action}:client:{client}")
    p.limiters.per_account.hit(f"{action}:account:{account}")


async def user_by_password(p: Platform, s: AsyncSession, email: str, password: str) -> User:
    """The active user with this email and password; one message for every failure."""
    user = await s.scalar(select(User).where(User.email == normalize_email(email)))
    if not p.passwords.verify(user.password_hash if user else None, password):
        raise NotAuthenticated(BAD_LOGIN)
    if user is None or not user.is_active:
        raise NotAuthenticated(BAD_LOGIN)
    return user


async def _default_membership(s: AsyncSession, user_id: str) -> Membership | None:
    query = select(Membership).where(Membership.user_id == user_id)
    return (await s.scalars(query.order_by(Membership.created_at, Membership.id))).first()


async def login(
    p: Platform, email: str, password: str, client: str, user_agent: str = ""
) -> TokenResponse:
    """A JWT bound to a new login session, acting in the user's first workspace."""
    limit(p, "login", client, normalize_email(email))
    lifetime = timedelta(minutes=p.settings.jwt_lifetime_minutes)

    async def check(s: AsyncSession) -> tuple[str, str]:
        user = await user_by_password(p, s, email, password)
        membership = await _default_membership(s, user.id)
        if membership is None:
            raise NotAuthenticated("this account is in no workspace; ask an owner to invite you")
        return user.id, membership.workspace_id

    async def start(s: AsyncSession) -> str:
        await _forget_old_sessions(s, user_id)
        session = UserSession(user_id=user_id, expires_at=utcnow() + lifetime,
                              user_agent=_printable(user_agent)[:200])
        s.add(session)
        await s.flush()
        return session.id

    user_id, workspace_id = await p.db.read(check)  # the slow password check locks nothing
    session_id = await p.db.write(start, info={"actor_user_id": user_id})
    jwt = issue_jwt(p.keys.jwt, user_id, workspace_id, lifetime, session_id)
    return TokenResponse(access_token=jwt)


async def _forget_old_sessions(s: AsyncSession, user_id: str) -> None:
    """Sessions that ended long ago are deleted (with their audit rows) when the user logs in."""
    query = select(UserSession).where(UserSession.user_id == user_id,
                                      UserSession.expires_at < utcnow() - FORGET_SESSIONS_AFTER)
    for old in (await s.scalars(query)).all():
        await delete_recorded(s, old)


def _printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable())


async def _actor_from_jwt(
    p: Platform, s: AsyncSession, token: str, workspace: str | None
) -> Credential:
    """The actor of a JWT whose login session is live (one query), and the session's last use."""
    claims = decode_jwt(p.keys.jwt, token)
    if claims is None or not claims.get("sid"):
        raise NotAuthenticated(BAD_TOKEN)
    wanted = workspace or claims["wid"]
    member = and_(Membership.user_id == User.id, Membership.workspace_id == wanted)
    query = (
        select(UserSession.last_seen_at, UserSession.expires_at, Membership)
        .join(User, User.id == UserSession.user_id)
        .outerjoin(Membership, member)
        .where(UserSession.id == claims["sid"], UserSession.user_id == claims["sub"],
               UserSession.revoked_at.is_(None), UserSession.expires_at > utcnow(), User.is_active)
    )
    row = (await s.execute(query)).first()
    if row is None:
        raise NotAuthenticated(BAD_TOKEN)
    last_seen, ends, membership = row
    if membership is None and workspace:
        raise NotFound("workspace", workspace)
    if membership is None:
        raise NotAuthenticated(BAD_TOKEN)
    actor = Actor(membership.user_id, membership.workspace_id, membership.role,
                  session_id=claims["sid"])
    return Credential(actor, last_seen, ends)


def _live(token: type[ApiToken]) -> ColumnElement[bool]:
    expiry = or_(token.expires_at.is_(None), token.expires_at > utcnow())
    return and_(token.revoked_at.is_(None), expiry)


async def _actor_from_api_token(
    s: AsyncSession, token: str, workspace: str | None
) -> Credential:
    """The token's actor at its effective role (one query), and the token's last use. A token
    whose parent is revoked or expired is refused too (revocation also cascades, and a child
    never outlives its parent, so this holds for the whole lineage)."""
    member = and_(Membership.user_id == ApiToken.user_id,
                  Membership.workspace_id == ApiToken.workspace_id)
    parent = aliased(ApiToken)
    query = (
        select(ApiToken, Membership.role)
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(Membership, member)
        .outerjoin(parent, parent.id == ApiToken.parent_token_id)
        .where(ApiToken.token_hash == hash_api_token(token), User.is_active,
               or_(parent.id.is_(None), _live(parent)), _live(ApiToken))
    )
    row = (await s.execute(query)).first()
    if row is None:
        raise NotAuthenticated(BAD_TOKEN)
    found, role = row
    if workspace and workspace != found.workspace_id:
        raise Forbidden("this API token belongs to another workspace")
    if role is None:
        raise NotAuthenticated(BAD_TOKEN)
    actor = Actor(found.user_id, found.workspace_id, effective_role(role, found.role),
                  token_id=found.id)
    return Credential(actor, found.last_used_at, found.expires_at)


async def authenticate(p: Platform, token: str, workspace: str | None = None) -> Actor:
    """The actor behind a bearer token, in `workspace` when given (else the token's own),
    from this process's cache when it resolved the token a moment ago (`auth_cache`)."""
    key = cache_key(token, workspace)
    found = p.auth_cache.get(key)
    if found is None:
        generation = p.auth_cache.generation
        found = await p.db.read(lambda s: _resolve(p, s, token, workspace))
        p.auth_cache.put(key, found, generation)
    if found.last_used is None or found.last_used < utcnow() - LAST_USED_RESOLUTION:
        found.last_used = utcnow()
        await _record_use(p, found.actor)
    return found.actor


async def _resolve(p: Platform, s: AsyncSession, token: str, workspace: str | None) -> Credential:
    if token.startswith(API_TOKEN_PREFIX):
        return await _actor_from_api_token(s, token, workspace)
    return await _actor_from_jwt(p, s, token, workspace)


async def _record_use(p: Platform, actor: Actor) -> None:
    """Record use at one-minute resolution, so most reads do not turn into a write."""
    if actor.token_id:
        query = update(ApiToken).where(ApiToken.id == actor.token_id)
        query = query.values(last_used_at=utcnow())
    else:
        query = update(UserSession).where(UserSession.id == actor.session_id)
        query = query.values(last_seen_at=utcnow())

    async def tx(s: AsyncSession) -> None:
        await s.execute(query.execution_options(synchronize_session=False, **{UNWATCHED: True}))

    await p.db.write(tx)


async def whoami(p: Platform, actor: Actor) -> WhoAmI:
    async def tx(s: AsyncSession) -> WhoAmI:
        user = await s.get_one(User, actor.user_id)
        workspace = await s.get_one(Workspace, actor.workspace_id)
        return WhoAmI(
            user=UserPublic.model_validate(user), workspace_id=workspace.id,
            workspace_name=workspace.name, role=actor.role, via_api_token=bool(actor.token_id),
        )

    return await p.db.read(tx)
