"""Login sessions behind JWTs: listed, revoked, ended by logout and by a password change;
accounts in no workspace deleted by their owner."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from dockyard.core.platform import Platform
from dockyard.kernel.security import decode_jwt
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.tables import User, UserSession
from tests.conftest import PASSWORD, Account, log_in

ME = "/api/v1/auth/me"
NEW_PASSWORD = "a-brand-new-password"


async def new_token(client, account: Account, **body) -> dict:  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/auth/tokens", json={"name": "t", **body},
                               headers=account.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_jwt_names_its_session_and_the_session_is_listed(client, owner, platform):
    claims = decode_jwt(platform.keys.jwt, owner.headers["Authorization"].split()[1])
    assert claims is not None
    listed = await client.get("/api/v1/auth/sessions", headers=owner.headers)
    assert listed.status_code == 200
    [session] = listed.json()
    assert session["id"] == claims["sid"]
    assert session["user_agent"].startswith("python-httpx/")  # the login's, kept
    assert session["current"] is True
    assert session["last_seen_at"] is not None


async def test_logout_ends_the_jwt_at_once(client, owner):
    other = await log_in(client, owner.email)
    assert (await client.post("/api/v1/auth/logout", headers=owner.headers)).status_code == 204
    assert (await client.get(ME, headers=owner.headers)).status_code == 401
    assert (await client.get(ME, headers=other.headers)).status_code == 200


async def test_logout_with_an_api_token_revokes_that_token(client, owner):
    token = (await new_token(client, owner))["token"]
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 204
    assert (await client.get(ME, headers=bearer(token))).status_code == 401
    assert (await client.get(ME, headers=owner.headers)).status_code == 200


async def test_a_session_can_be_ended_from_another_one(client, owner):
    laptop = await log_in(client, owner.email)
    sessions = (await client.get("/api/v1/auth/sessions", headers=owner.headers)).json()
    [laptop_session] = [s for s in sessions if not s["current"]]
    path = f"/api/v1/auth/sessions/{laptop_session['id']}"
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(ME, headers=laptop.headers)).status_code == 401


async def test_another_users_session_is_not_found(client, owner, stranger):
    sessions = (await client.get("/api/v1/auth/sessions", headers=owner.headers)).json()
    path = f"/api/v1/auth/sessions/{sessions[0]['id']}"
    assert (await client.delete(path, headers=stranger.headers)).status_code == 404
    assert (await client.get(ME, headers=owner.headers)).status_code == 200


async def test_a_password_change_ends_every_other_credential(client, owner, member_of):
    await member_of(Role.VIEWER)  # someone else's credentials are not touched
    phone = await log_in(client, owner.email)
    token = (await new_token(client, owner))["token"]
    changed = await client.post("/api/v1/auth/password", headers=owner.headers,
                                json={"old_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"sessions_ended": 1, "tokens_ended": 1}
    assert (await client.get(ME, headers=phone.headers)).status_code == 401
    assert (await client.get(ME, headers=bearer(token))).status_code == 401
    assert (await client.get(ME, headers=owner.headers)).status_code == 200
    old = await client.post("/api/v1/auth/token",
                            data={"username": owner.email, "password": PASSWORD})
    assert old.status_code == 401
    await log_in(client, owner.email, NEW_PASSWORD)


async def test_a_password_change_through_a_token_keeps_that_token(client, owner):
    token = (await new_token(client, owner))["token"]
    changed = await client.post("/api/v1/auth/password", headers=bearer(token),
                                json={"old_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.json() == {"sessions_ended": 1, "tokens_ended": 0}
    assert (await client.get(ME, headers=bearer(token))).status_code == 200
    assert (await client.get(ME, headers=owner.headers)).status_code == 401


async def test_a_password_change_through_a_minted_token_keeps_only_that_token(client, owner):
    parent = (await new_token(client, owner))["token"]
    child = await client.post("/api/v1/auth/tokens", json={"name": "child"},
                              headers=bearer(parent))
    asking = bearer(child.json()["token"])
    changed = await client.post("/api/v1/auth/password", headers=asking,
                                json={"old_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.json() == {"sessions_ended": 1, "tokens_ended": 1}
    assert (await client.get(ME, headers=asking)).status_code == 200
    assert (await client.get(ME, headers=bearer(parent))).status_code == 401


async def test_a_password_change_needs_the_old_password(client, owner):
    refused = await client.post("/api/v1/auth/password", headers=owner.headers,
                                json={"old_password": "wrong", "new_password": NEW_PASSWORD})
    assert refused.status_code == 403
    short = await client.post("/api/v1/auth/password", headers=owner.headers,
                              json={"old_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422
    await log_in(client, owner.email)


async def _users(platform: Platform) -> int:
    async def count(s):  # type: ignore[no-untyped-def]
        return await s.scalar(select(func.count()).select_from(User))

    return int(await platform.db.read(count))


async def test_an_account_in_no_workspace_is_deleted_by_its_user(
    client, owner, member_of, platform
):
    member = await member_of(Role.MEMBER)
    body = {"email": member.email, "password": PASSWORD}
    still_member = await client.request("DELETE", "/api/v1/auth/account", json=body)
    assert still_member.status_code == 409
    leave = f"/api/v1/workspaces/{owner.workspace_id}/members/{member.user_id}"
    assert (await client.delete(leave, headers=member.headers)).status_code == 204
    before = await _users(platform)
    wrong = await client.request("DELETE", "/api/v1/auth/account",
                                 json={**body, "password": "not-it"})
    assert wrong.status_code == 401
    deleted = await client.request("DELETE", "/api/v1/auth/account", json=body)
    assert deleted.status_code == 204
    assert await _users(platform) == before - 1
    gone = await client.post("/api/v1/auth/token",
                             data={"username": member.email, "password": PASSWORD})
    assert gone.status_code == 401


async def test_sessions_that_ended_long_ago_are_forgotten_at_the_next_login(
    client, owner, platform
):
    async def age(s):  # type: ignore[no-untyped-def]
        old = utcnow() - timedelta(days=31)
        await s.execute(update(UserSession).values(expires_at=old, created_at=old))

    await platform.db.write(age)
    await log_in(client, owner.email)

    async def count(s):  # type: ignore[no-untyped-def]
        return await s.scalar(select(func.count()).select_from(UserSession))

    assert await platform.db.read(count) == 1  # only the new one
