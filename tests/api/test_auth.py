"""Password login, JWTs, API tokens, stable identity and rate limits."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text, update

from dockyard.api.app import create_app
from dockyard.core.bootstrap import ensure_first_owner
from dockyard.core.platform import Platform
from dockyard.kernel.security import decode_jwt, ensure_key_file, issue_jwt
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.tables import ApiToken
from tests.conftest import PASSWORD, log_in, make_settings

TOKEN_URL = "/api/v1/auth/token"


async def test_login_answers_the_oauth2_password_flow_shape(client, owner, platform):
    answer = await client.post(TOKEN_URL, data={"username": owner.email, "password": PASSWORD})
    body = answer.json()
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "bearer"
    claims = decode_jwt(platform.keys.jwt, body["access_token"])
    assert claims is not None
    assert claims["sub"] == owner.user_id
    assert claims["exp"] - claims["iat"] == 8 * 3600


@pytest.mark.parametrize(("username", "password"), [
    ("owner@example.com", "wrong-password"), ("nobody@example.com", PASSWORD),
])
async def test_bad_credentials_are_401_without_saying_which_part(client, owner, username, password):
    answer = await client.post(TOKEN_URL, data={"username": username, "password": password})
    assert answer.status_code == 401
    assert answer.json()["detail"] == "incorrect email or password"
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_email_is_matched_case_insensitively(client, owner):
    again = await log_in(client, "  OWNER@Example.COM ")
    assert again.user_id == owner.user_id
    assert again.workspace_id == owner.workspace_id


async def test_logging_in_again_maps_to_the_same_user_and_creates_no_tenant(client, owner):
    first = (await client.get("/api/v1/workspaces", headers=owner.headers)).json()
    for _ in range(3):
        again = await log_in(client, owner.email)
        assert again.user_id == owner.user_id
    after = (await client.get("/api/v1/workspaces", headers=again.headers)).json()
    assert after == first


async def test_a_user_in_no_workspace_cannot_log_in_and_gets_no_workspace(
    client, platform, owner, member_of
):
    member = await member_of(Role.MEMBER)
    answer = await client.delete(
        f"/api/v1/workspaces/{owner.workspace_id}/members/{member.user_id}", headers=owner.headers
    )
    assert answer.status_code == 204
    refused = await client.post(TOKEN_URL, data={"username": member.email, "password": PASSWORD})
    assert refused.status_code == 401
    assert "no workspace" in refused.json()["detail"]
    listing = await client.get("/api/v1/workspaces", headers=owner.headers)
    assert len(listing.json()) == 1


async def test_expired_and_forged_jwts_are_rejected(client, owner, platform):
    expired = issue_jwt(platform.keys.jwt, owner.user_id, owner.workspace_id, timedelta(seconds=-1))
    forged = issue_jwt(b"x" * 32, owner.user_id, owner.workspace_id, timedelta(hours=1))
    for token in (expired, forged, "not-a-jwt", "dy_not-a-token"):
        answer = await client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token
    assert (await client.get("/api/v1/projects")).status_code == 401


async def test_jwt_lifetime_comes_from_the_settings(tmp_path, database_url):
    settings = make_settings(tmp_path, database_url, jwt_lifetime_minutes=5)
    ensure_key_file(settings.key_file)
    platform = Platform.open(settings)
    await ensure_first_owner(platform, "five@example.com", PASSWORD)
    transport = httpx.ASGITransport(app=create_app(settings, platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(TOKEN_URL, data={"username": "five@example.com",
                                                    "password": PASSWORD})
    claims = decode_jwt(platform.keys.jwt, answer.json()["access_token"])
    await platform.close()
    assert claims is not None
    assert claims["exp"] - claims["iat"] == 300


async def test_api_tokens_are_shown_once_stored_hashed_and_revocable(client, owner, platform):
    created = await client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=owner.headers)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("dy_")
    listed = await client.get("/api/v1/auth/tokens", headers=owner.headers)
    assert token not in listed.text
    assert [t["name"] for t in listed.json()] == ["ci"]
    assert await _stored_anywhere(platform, token) is False
    bearer = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/v1/auth/me", headers=bearer)
    assert me.json()["via_api_token"] is True
    revoked = await client.delete(f"/api/v1/auth/tokens/{created.json()['id']}", headers=bearer)
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 401


async def _stored_anywhere(platform: Platform, needle: str) -> bool:
    async def scan(s):  # type: ignore[no-untyped-def]
        rows = await s.execute(text("SELECT token_hash, prefix, name FROM api_tokens"))
        return any(needle in " ".join(map(str, row)) for row in rows)

    return await platform.db.read(scan)


async def test_api_token_last_use_is_recorded(client, owner):
    created = await client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=owner.headers)
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    await client.get("/api/v1/projects", headers=bearer)
    listed = await client.get("/api/v1/auth/tokens", headers=owner.headers)
    assert listed.json()[0]["last_used_at"] is not None


async def test_expired_api_token_is_rejected(client, owner, platform):
    created = await client.post(
        "/api/v1/auth/tokens", json={"name": "ci", "expires_in_days": 1}, headers=owner.headers
    )
    async def expire(s):  # type: ignore[no-untyped-def]
        await s.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))

    await platform.db.write(expire)
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    assert (await client.get("/api/v1/projects", headers=bearer)).status_code == 401


async def test_api_token_of_a_removed_member_stops_working(client, owner, member_of):
    member = await member_of(Role.MEMBER)
    created = await client.post("/api/v1/auth/tokens", json={"name": "m"}, headers=member.headers)
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    assert (await client.get("/api/v1/projects", headers=bearer)).status_code == 200
    path = f"/api/v1/workspaces/{owner.workspace_id}/members/{member.user_id}"
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get("/api/v1/projects", headers=bearer)).status_code == 401


async def test_login_is_rate_limited_per_account_with_retry_after(
    tmp_path, database_url
):
    client, platform = await _limited_client(tmp_path, database_url, per_client=100, per_account=3)
    async with client:
        codes = [(await client.post(TOKEN_URL, data={"username": "a@example.com",
                                                     "password": "wrong"})).status_code
                 for _ in range(4)]
        other = await client.post(TOKEN_URL, data={"username": "b@example.com", "password": "x"})
        limited = await client.post(TOKEN_URL, data={"username": "a@example.com",
                                                     "password": "wrong"})
    await platform.close()
    assert codes == [401, 401, 401, 429]
    assert other.status_code == 401
    assert 1 <= int(limited.headers["retry-after"]) <= 60


async def test_login_is_rate_limited_per_client(tmp_path, database_url):
    client, platform = await _limited_client(tmp_path, database_url, per_client=3, per_account=100)
    async with client:
        codes = [(await client.post(TOKEN_URL, data={"username": f"u{i}@example.com",
                                                     "password": "x"})).status_code
                 for i in range(4)]
    await platform.close()
    assert codes == [401, 401, 401, 429]


async def _limited_client(
    tmp_path, database_url, per_client: int, per_account: int
) -> tuple[httpx.AsyncClient, Platform]:
    settings = make_settings(tmp_path, database_url, login_limit_per_client=per_client,
                             login_limit_per_account=per_account)
    ensure_key_file(settings.key_file)
    platform = Platform.open(settings)
    transport = httpx.ASGITransport(app=create_app(settings, platform))
    return httpx.AsyncClient(transport=transport, base_url="http://t"), platform


async def test_token_creation_is_rate_limited(tmp_path, database_url):
    client, platform = await _limited_client(tmp_path, database_url, per_client=100, per_account=2)
    await ensure_first_owner(platform, "o@example.com", PASSWORD)
    async with client:
        account = await log_in(client, "o@example.com")
        codes = [(await client.post("/api/v1/auth/tokens", json={"name": f"t{i}"},
                                    headers=account.headers)).status_code for i in range(3)]
    await platform.close()
    assert codes == [201, 201, 429]


async def test_a_jwt_works_only_with_a_live_session_of_its_own_user(client, owner, stranger,
                                                                    platform):
    key, hour = platform.keys.jwt, timedelta(hours=1)
    claims = decode_jwt(key, stranger.headers["Authorization"].split()[1])
    assert claims is not None
    without_session = issue_jwt(key, owner.user_id, owner.workspace_id, hour)
    others_session = issue_jwt(key, owner.user_id, owner.workspace_id, hour, claims["sid"])
    for token in (without_session, others_session):
        answer = await client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401
