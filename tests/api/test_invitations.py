"""Joining a workspace by invitation only: single-use, expiring, revocable, never revealing
whether an account exists, and nobody choosing another person's password."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from dockyard.core.bootstrap import create_owner
from dockyard.core.platform import Platform
from dockyard.kernel.errors import Conflict
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.tables import Invitation
from tests.conftest import PASSWORD, Account, log_in

ACCEPT = "/api/v1/invitations/accept"
VICTIM = "victim@example.com"


def invitations_of(account: Account) -> str:
    return f"/api/v1/workspaces/{account.workspace_id}/invitations"


async def invite(
    client: httpx.AsyncClient, inviter: Account, email: str, role: str = "member"
) -> dict[str, Any]:
    answer = await client.post(invitations_of(inviter), json={"email": email, "role": role},
                               headers=inviter.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def accept(
    client: httpx.AsyncClient, token: str, password: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"token": token} if password is None else {"token": token, "password": password}
    return await client.post(ACCEPT, json=body, headers=headers or {})


async def test_the_takeover_through_a_pre_created_account_is_closed(client, owner, stranger):
    """Owner A invites the victim first; owner B invites the same address later. A has no way
    to choose the victim's password, and nothing A knows gets into B's workspace."""
    members = f"/api/v1/workspaces/{owner.workspace_id}/members"
    old_way = await client.post(members, headers=owner.headers,
                                json={"email": VICTIM, "role": "member", "password": "chosen-by-a"})
    assert old_way.status_code == 405  # members are no longer created by someone else
    from_a = await invite(client, owner, VICTIM)
    assert "password" not in str(from_a).lower()
    from_b = await invite(client, stranger, VICTIM)
    # The victim accepts B's invitation with a password only the victim knows.
    joined = await accept(client, from_b["token"], "victims-own-secret")
    assert joined.status_code == 200, joined.text
    assert joined.json()["account_created"] is True
    # A holds its own invitation token: using it without the victim's password gets nothing.
    for attempt in (None, "chosen-by-a"):
        refused = await accept(client, from_a["token"], attempt)
        assert refused.status_code in (401, 422), refused.text
    wrong = await client.post("/api/v1/auth/token",
                              data={"username": VICTIM, "password": "chosen-by-a"})
    assert wrong.status_code == 401
    victim = await log_in(client, VICTIM, "victims-own-secret")
    assert victim.workspace_id == stranger.workspace_id
    b_members = await client.get(f"/api/v1/workspaces/{stranger.workspace_id}/members",
                                 headers=stranger.headers)
    assert sorted(m["email"] for m in b_members.json()) == [stranger.email, VICTIM]
    in_b = {**owner.headers, "X-Dockyard-Workspace": stranger.workspace_id}
    assert (await client.get("/api/v1/projects", headers=in_b)).status_code == 404


async def test_the_invite_answer_is_the_same_whether_an_account_exists(client, owner, stranger):
    existing = await invite(client, owner, stranger.email, "viewer")
    unknown = await invite(client, owner, "nobody-yet@example.com", "viewer")
    varying = {"id", "token", "link", "prefix", "created_at", "expires_at", "email"}
    assert set(existing) == set(unknown)
    assert {k: v for k, v in existing.items() if k not in varying} == \
        {k: v for k, v in unknown.items() if k not in varying}
    assert existing["link"].endswith(f"/invite#{existing['token']}")


async def test_a_new_account_chooses_its_own_password(client, owner):
    invited = await invite(client, owner, " New.Person@Example.COM ", "viewer")
    assert invited["email"] == "new.person@example.com"
    fullwidth = await invite(client, owner, "\uff41\uff42@example.com")
    assert fullwidth["email"] == "ab@example.com"  # NFKC
    joined = await accept(client, invited["token"], "my-own-password")
    assert joined.status_code == 200, joined.text
    assert joined.json()["role"] == "viewer"
    person = await log_in(client, "new.person@example.com", "my-own-password")
    me = (await client.get("/api/v1/auth/me", headers=person.headers)).json()
    assert (me["workspace_id"], me["role"]) == (owner.workspace_id, "viewer")


async def test_an_existing_account_accepts_logged_in_or_with_its_password(
    client, owner, stranger
):
    logged_in = await invite(client, owner, stranger.email)
    answer = await accept(client, logged_in["token"], headers=stranger.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["account_created"] is False
    assert answer.json()["user_id"] == stranger.user_id

    third = await invite(client, stranger, owner.email, "admin")
    with_password = await accept(client, third["token"], PASSWORD)
    assert with_password.status_code == 200, with_password.text
    in_third = {**owner.headers, "X-Dockyard-Workspace": stranger.workspace_id}
    me = (await client.get("/api/v1/auth/me", headers=in_third)).json()
    assert me["role"] == "admin"


async def test_an_invitation_for_another_address_is_refused_to_a_logged_in_account(
    client, owner, stranger
):
    invited = await invite(client, owner, "someone-else@example.com")
    refused = await accept(client, invited["token"], headers=stranger.headers)
    assert refused.status_code == 403
    assert "another address" in refused.json()["detail"]
    still = await accept(client, invited["token"], "a-fine-password")
    assert still.status_code == 200  # the refusal did not use it up


async def test_an_existing_account_without_login_or_password_is_told_to_log_in(
    client, owner, stranger
):
    invited = await invite(client, owner, stranger.email)
    answer = await accept(client, invited["token"])
    assert answer.status_code == 422
    assert "log in" in answer.json()["detail"]
    wrong = await accept(client, invited["token"], "not-the-password")
    assert wrong.status_code == 401


async def test_an_invitation_is_single_use(client, owner):
    invited = await invite(client, owner, "once@example.com")
    assert (await accept(client, invited["token"], "password-one")).status_code == 200
    again = await accept(client, invited["token"], "password-two")
    assert again.status_code == 410
    assert "used already" in again.json()["detail"]


async def test_expired_and_revoked_invitations_are_refused(client, owner, platform: Platform):
    expired = await invite(client, owner, "late@example.com")
    revoked = await invite(client, owner, "revoked@example.com")

    async def expire(s):  # type: ignore[no-untyped-def]
        query = update(Invitation).where(Invitation.id == expired["id"])
        await s.execute(query.values(expires_at=utcnow() - timedelta(seconds=1)))

    await platform.db.write(expire)
    gone = await client.delete(f"{invitations_of(owner)}/{revoked['id']}", headers=owner.headers)
    assert gone.status_code == 204
    for invited, word in ((expired, "expired"), (revoked, "revoked")):
        answer = await accept(client, invited["token"], "a-fine-password")
        assert answer.status_code == 410
        assert word in answer.json()["detail"]
    unknown = await accept(client, "dyi_" + "x" * 43, "a-fine-password")
    assert unknown.status_code == 404


async def test_pending_invitations_are_listed_without_their_secret(
    client, owner, platform: Platform
):
    pending = await invite(client, owner, "pending@example.com")
    used = await invite(client, owner, "used@example.com")
    await accept(client, used["token"], "a-fine-password")
    listed = await client.get(invitations_of(owner), headers=owner.headers)
    assert [i["email"] for i in listed.json()] == ["pending@example.com"]
    assert pending["token"] not in listed.text
    assert not await _stored(platform, pending["token"])


async def _stored(platform: Platform, needle: str) -> bool:
    async def scan(s):  # type: ignore[no-untyped-def]
        rows = await s.execute(text("SELECT token_hash, prefix, email FROM invitations"))
        audit = await s.execute(text("SELECT before, after FROM audit_events"))
        return any(needle in " ".join(map(str, row)) for row in [*rows, *audit])

    return await platform.db.read(scan)


@pytest.mark.parametrize("look_alike", [
    "\u0430dmin@example.com",  # Cyrillic a
    "adm\u0456n@example.com",  # Cyrillic i
    "adm\u03b9n@\u0435xample.com",  # Greek iota, Cyrillic e
])
async def test_a_look_alike_of_an_existing_address_cannot_become_an_account(
    client, owner, member_of, look_alike
):
    await member_of(Role.VIEWER, "admin@example.com")
    invited = await invite(client, owner, look_alike)
    refused = await accept(client, invited["token"], "impostor-password")
    assert refused.status_code == 409
    assert "look-alike" in refused.json()["detail"]


async def test_owner_invitations_need_an_owner(client, owner, member_of):
    admin = await member_of(Role.ADMIN)
    refused = await client.post(invitations_of(owner), json={"email": "x@example.com",
                                                             "role": "owner"},
                                headers=admin.headers)
    assert refused.status_code == 403
    assert (await invite(client, owner, "x@example.com", "owner"))["role"] == "owner"


async def test_inviting_a_current_member_is_a_conflict(client, owner):
    answer = await client.post(invitations_of(owner), json={"email": owner.email},
                               headers=owner.headers)
    assert answer.status_code == 409


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "line\n@example.com", "",
                                   "ad\u200bmin@example.com"])
async def test_bad_addresses_are_422(client, owner, email):
    answer = await client.post(invitations_of(owner), json={"email": email},
                               headers=owner.headers)
    assert answer.status_code == 422


async def test_an_operator_cannot_create_a_look_alike_owner(platform: Platform, owner):
    with pytest.raises(Conflict, match="looks like it"):
        await create_owner(platform, "\u043ewner@example.com", PASSWORD, "look-alike")


@pytest.mark.parametrize("token", ["dyi_" + "x" * 43 + "\n", "dy_" + "x" * 43, "x" * 50])
async def test_a_malformed_invitation_token_is_422(client, token):
    answer = await accept(client, token, "a-fine-password")
    assert answer.status_code == 422
    assert "dyi_" in answer.text
