"""The per-process cache of resolved credentials: every change to a credential or membership
holds at once in the process that made it, and within `auth_cache_seconds` in another process
(a second Platform on the same database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from dockyard.core.auth import authenticate
from dockyard.core.auth_cache import AuthCache, Credential, cache_key
from dockyard.core.authz import Actor
from dockyard.core.platform import Platform
from dockyard.kernel.db import ANY_TABLE
from dockyard.kernel.errors import NotAuthenticated
from dockyard.kernel.settings import Settings
from dockyard.models.base import utcnow
from dockyard.models.enums import Role
from dockyard.models.tables import User
from tests.conftest import PASSWORD, Account

P = "/api/v1/projects"
ME = "/api/v1/auth/me"


async def new_token(client, account: Account) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    answer = await client.post("/api/v1/auth/tokens", json={"name": "t"}, headers=account.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], {"Authorization": f"Bearer {answer.json()['token']}"}


async def warm(client, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Two requests, so the second is served from the cache."""
    for _ in range(2):
        assert (await client.get(P, headers=headers)).status_code == 200


async def test_a_revoked_token_is_refused_at_once(client, owner):
    token_id, headers = await new_token(client, owner)
    await warm(client, headers)
    revoked = await client.delete(f"/api/v1/auth/tokens/{token_id}", headers=owner.headers)
    assert revoked.status_code == 204
    assert (await client.get(P, headers=headers)).status_code == 401


async def test_logging_out_ends_the_session_at_once(client, owner):
    await warm(client, owner.headers)
    assert (await client.post("/api/v1/auth/logout", headers=owner.headers)).status_code == 204
    assert (await client.get(P, headers=owner.headers)).status_code == 401


async def test_a_removed_member_is_refused_at_once(client, owner, member_of):
    member = await member_of(Role.MEMBER)
    await warm(client, member.headers)
    path = f"/api/v1/workspaces/{owner.workspace_id}/members/{member.user_id}"
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(P, headers=member.headers)).status_code in (401, 404)


async def test_a_lowered_role_applies_at_once(client, owner, member_of):
    member = await member_of(Role.ADMIN)
    await warm(client, member.headers)
    path = f"/api/v1/workspaces/{owner.workspace_id}/members/{member.user_id}"
    changed = await client.patch(path, json={"role": "viewer"}, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert (await client.get(ME, headers=member.headers)).json()["role"] == "viewer"


async def test_a_deactivated_user_is_refused_at_once(client, owner, platform):
    _, headers = await new_token(client, owner)
    await warm(client, headers)

    async def deactivate(s):  # type: ignore[no-untyped-def]
        (await s.get_one(User, owner.user_id)).is_active = False

    await platform.db.write(deactivate)
    assert (await client.get(P, headers=headers)).status_code == 401


async def test_a_password_change_ends_other_credentials_at_once(client, owner):
    _, headers = await new_token(client, owner)
    await warm(client, headers)
    body = {"old_password": PASSWORD, "new_password": "another-long-password"}
    changed = await client.post("/api/v1/auth/password", json=body, headers=owner.headers)
    assert changed.status_code == 200, changed.text
    assert (await client.get(P, headers=headers)).status_code == 401


@pytest.fixture
async def other_process(settings: Settings) -> AsyncIterator[Platform]:
    """A second platform on the same database, as another API process would be."""
    other = Platform.open(settings.model_copy(update={"auth_cache_seconds": 60.0}))
    yield other
    await other.close()


async def test_another_process_keeps_a_revoked_token_until_its_entry_ends(
    client, owner, other_process
):
    token_id, headers = await new_token(client, owner)
    secret = headers["Authorization"].split()[1]
    actor = await authenticate(other_process, secret)
    await client.delete(f"/api/v1/auth/tokens/{token_id}", headers=owner.headers)
    assert await authenticate(other_process, secret) == actor  # its cache has not heard
    other_process.auth_cache.seconds = 0.0
    other_process.auth_cache.invalidate(frozenset({"api_tokens"}))
    with pytest.raises(NotAuthenticated):
        await authenticate(other_process, secret)


async def test_another_process_refuses_a_revoked_token_within_the_cache_lifetime(
    client, owner, settings
):
    bound = 1.0
    other = Platform.open(settings.model_copy(update={"auth_cache_seconds": bound}))
    try:
        token_id, headers = await new_token(client, owner)
        secret = headers["Authorization"].split()[1]
        await authenticate(other, secret)
        await client.delete(f"/api/v1/auth/tokens/{token_id}", headers=owner.headers)
        assert await refused_within(other, secret, bound + 1.0)
    finally:
        await other.close()


async def refused_within(p: Platform, secret: str, seconds: float) -> bool:
    """Whether `p` refuses the token before `seconds` pass (asking again as it goes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await authenticate(p, secret)
        except NotAuthenticated:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_use_is_still_recorded_through_the_cache(client, owner):
    _, headers = await new_token(client, owner)
    await warm(client, headers)
    listed = await client.get("/api/v1/auth/tokens", headers=owner.headers)
    assert all(t["last_used_at"] for t in listed.json() if t["name"] == "t")


def credential(ends_in: float | None = None) -> Credential:
    ends = utcnow() + timedelta(seconds=ends_in) if ends_in is not None else None
    return Credential(Actor("u", "w", Role.OWNER), None, ends)


def test_the_cache_is_keyed_by_a_digest_and_bounded():
    cache = AuthCache(seconds=60, size=2)
    keys = [cache_key(f"dy_secret{n}", None) for n in range(3)]
    assert all(b"secret" not in key and len(key) == 32 for key in keys)
    for key in keys:
        cache.put(key, credential(), cache.generation)
    assert cache.get(keys[0]) is None
    assert cache.get(keys[1]) is not None
    assert cache.get(keys[2]) is not None
    assert cache_key("dy_x", "workspace-a") != cache_key("dy_x", None)


def test_an_entry_never_outlives_its_credential():
    cache = AuthCache(seconds=60)
    cache.put(b"k", credential(ends_in=-1), cache.generation)
    assert cache.get(b"k") is None


def test_a_lookup_that_raced_an_invalidation_is_not_kept():
    cache = AuthCache(seconds=60)
    began = cache.generation
    cache.invalidate(frozenset({"memberships"}))
    cache.put(b"k", credential(), began)
    assert cache.get(b"k") is None
    cache.invalidate(frozenset({"projects"}))  # not an auth table: nothing is dropped
    cache.put(b"k", credential(), cache.generation)
    cache.invalidate(frozenset({"projects"}))
    assert cache.get(b"k") is not None


def test_a_write_to_an_unknown_table_empties_the_cache():
    cache = AuthCache(seconds=60)
    cache.put(b"k", credential(), cache.generation)
    cache.invalidate(frozenset({ANY_TABLE}))
    assert cache.get(b"k") is None
