"""A token never grants more than the credential that created it: not a longer life, not a
higher role, not another workspace; revoking or expiring a token ends what it minted."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.tables import ApiToken
from tests.api.test_sessions import bearer, new_token
from tests.conftest import PASSWORD

TOKENS = "/api/v1/auth/tokens"
PROJECTS = "/api/v1/projects"


async def mint(client, headers: dict[str, str], **body) -> dict:  # type: ignore[no-untyped-def]
    answer = await client.post(TOKENS, json={"name": "child", **body}, headers=headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_a_token_minted_by_a_token_expires_no_later_than_its_parent(client, owner):
    parent = await new_token(client, owner, expires_in_days=1)
    child = await mint(client, bearer(parent["token"]))  # asks for no expiry at all
    longer = await mint(client, bearer(parent["token"]), expires_in_days=30)
    assert child["parent_token_id"] == parent["id"]
    for minted in (child, longer):
        assert minted["expires_at"] is not None
        assert minted["expires_at"] <= parent["expires_at"]


async def test_an_expired_parent_ends_its_children(client, owner, platform):
    parent = await new_token(client, owner, expires_in_days=1)
    child = await mint(client, bearer(parent["token"]))

    async def expire(s):  # type: ignore[no-untyped-def]
        past = utcnow() - timedelta(seconds=1)
        await s.execute(update(ApiToken).where(ApiToken.id == parent["id"])
                        .values(expires_at=past))

    await platform.db.write(expire)
    assert (await client.get(PROJECTS, headers=bearer(child["token"]))).status_code == 401


async def test_revoking_a_token_revokes_what_it_minted(client, owner):
    parent = await new_token(client, owner)
    child = await mint(client, bearer(parent["token"]))
    grandchild = await mint(client, bearer(child["token"]))
    assert (await client.delete(f"{TOKENS}/{parent['id']}", headers=owner.headers)).status_code \
        == 204
    for minted in (parent, child, grandchild):
        assert (await client.get(PROJECTS, headers=bearer(minted["token"]))).status_code == 401


async def test_a_revoked_token_cannot_mint(client, owner):
    parent = await new_token(client, owner)
    await client.delete(f"{TOKENS}/{parent['id']}", headers=owner.headers)
    answer = await client.post(TOKENS, json={"name": "late"}, headers=bearer(parent["token"]))
    assert answer.status_code == 401


async def test_a_role_cap_lowers_what_a_token_may_do(client, owner):
    viewer = await new_token(client, owner, role="viewer")
    assert viewer["role"] == "viewer"
    headers = bearer(viewer["token"])
    assert (await client.get(PROJECTS, headers=headers)).status_code == 200
    created = await client.post(PROJECTS, json={"name": "nope"}, headers=headers)
    assert created.status_code == 403
    me = (await client.get("/api/v1/auth/me", headers=headers)).json()
    assert me["role"] == "viewer"


async def test_a_token_cannot_be_capped_above_its_creator(client, owner, member_of):
    member = await member_of(Role.MEMBER)
    refused = await client.post(TOKENS, json={"name": "up", "role": "admin"},
                                headers=member.headers)
    assert refused.status_code == 403
    capped = await mint(client, owner.headers, role="member")
    above = await client.post(TOKENS, json={"name": "up", "role": "owner"},
                              headers=bearer(capped["token"]))
    assert above.status_code == 403


async def test_a_token_minted_by_a_capped_token_keeps_the_cap(client, owner):
    capped = await mint(client, owner.headers, role="viewer")
    child = await mint(client, bearer(capped["token"]))
    assert child["role"] == "viewer"
    created = await client.post(PROJECTS, json={"name": "nope"}, headers=bearer(child["token"]))
    assert created.status_code == 403


async def test_a_cap_never_raises_a_demoted_member(client, owner, member_of):
    admin = await member_of(Role.ADMIN)
    capped = await mint(client, admin.headers, role="admin")
    path = f"/api/v1/workspaces/{owner.workspace_id}/members/{admin.user_id}"
    demoted = await client.patch(path, json={"role": "viewer"}, headers=owner.headers)
    assert demoted.status_code == 200
    me = (await client.get("/api/v1/auth/me", headers=bearer(capped["token"]))).json()
    assert me["role"] == "viewer"


async def test_a_token_stays_in_its_workspace(client, owner, stranger):
    token = await new_token(client, owner)
    elsewhere = {**bearer(token["token"]), "X-Dockyard-Workspace": stranger.workspace_id}
    assert (await client.get(PROJECTS, headers=elsewhere)).status_code == 403
    child = await client.post(TOKENS, json={"name": "x"}, headers=elsewhere)
    assert child.status_code == 403


async def test_a_token_made_from_a_login_outlives_that_session(client, owner):
    """The documented rule: a login session's token carries the password's authority."""
    token = await new_token(client, owner)
    assert (await client.post("/api/v1/auth/logout", headers=owner.headers)).status_code == 204
    assert (await client.get(PROJECTS, headers=bearer(token["token"]))).status_code == 200


async def test_a_token_minted_by_a_login_expires_with_its_session(client, owner):
    """A stolen JWT cannot mint a credential that outlives it."""
    minted = await mint(client, owner.headers)  # asks for no expiry at all
    longer = await mint(client, owner.headers, expires_in_days=30)
    for token in (minted, longer):
        assert token["expires_at"] is not None
        ends = datetime.fromisoformat(token["expires_at"])
        assert utcnow() < ends <= utcnow() + timedelta(minutes=480)


async def test_the_password_typed_again_lets_a_token_outlive_the_login(client, owner):
    minted = await mint(client, owner.headers, password=PASSWORD)
    assert minted["expires_at"] is None
    wrong = await client.post(TOKENS, json={"name": "x", "password": "not-the-password"},
                              headers=owner.headers)
    assert wrong.status_code == 401
    assert "incorrect email or password" in wrong.text
