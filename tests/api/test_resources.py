"""Projects, services, variables and history through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from dockyard.core.credentials import provider_token
from dockyard.models.enums import Role

P = "/api/v1/projects"
SVC = f"{P}/shop/services/web"


async def test_project_lifecycle(client, owner):
    h = owner.headers
    created = await client.post(P, json={"name": "shop", "description": "the store"}, headers=h)
    assert created.status_code == 201
    assert (await client.get(f"{P}/shop", headers=h)).json()["description"] == "the store"
    renamed = await client.patch(f"{P}/shop", json={"name": "store"}, headers=h)
    assert renamed.json()["name"] == "store"
    assert (await client.get(f"{P}/shop", headers=h)).status_code == 404
    assert [p["name"] for p in (await client.get(P, headers=h)).json()] == ["store"]
    assert (await client.delete(f"{P}/store", headers=h)).status_code == 204
    assert (await client.get(P, headers=h)).json() == []


async def test_service_lifecycle(client, shop):
    h = shop.headers
    created = await client.post(f"{P}/shop/services", headers=h, json={
        "name": "api", "image": "registry.local:5000/team/api:1.2", "config": {"port": 9000},
    })
    assert created.json()["config"] == {"port": 9000, "health_path": "/", "replicas": 1}
    changed = await client.patch(f"{P}/shop/services/api", headers=h,
                                 json={"image": "nginx:1.27", "config": {"replicas": 2}})
    assert changed.json()["image"] == "nginx:1.27"
    assert changed.json()["config"]["replicas"] == 2
    names = [s["name"] for s in (await client.get(f"{P}/shop/services", headers=h)).json()]
    assert names == ["api", "web"]
    assert (await client.delete(f"{P}/shop/services/api", headers=h)).status_code == 204
    assert (await client.get(f"{P}/shop/services/api", headers=h)).status_code == 404


@pytest.mark.parametrize(("body", "fragment"), [
    ({"name": "Shop"}, "lowercase letters"),
    ({"name": "-shop"}, "starting and ending"),
    ({"name": "a" * 64}, "at most 63"),
    ({"name": ""}, "at least 1"),
    ({"name": "shop; rm -rf /"}, "lowercase letters"),
    ({"name": "shop", "extra": 1}, "Extra inputs"),
])
async def test_bad_project_names_get_a_message_a_person_can_act_on(client, owner, body, fragment):
    answer = await client.post(P, json=body, headers=owner.headers)
    assert answer.status_code == 422
    assert fragment in str(answer.json()["detail"])
    assert (await client.get(P, headers=owner.headers)).json() == []


async def test_duplicate_names_conflict(client, shop):
    again = await client.post(P, json={"name": "shop"}, headers=shop.headers)
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    twin = await client.post(f"{P}/shop/services", json={"name": "web"}, headers=shop.headers)
    assert twin.status_code == 409


@pytest.mark.parametrize("image", ["UPPER:1", "nginx:", "a b", "nginx;reboot", "http://x/y"])
async def test_bad_image_references_are_rejected(client, shop, image):
    answer = await client.patch(SVC, json={"image": image}, headers=shop.headers)
    assert answer.status_code == 422
    assert "image reference" in str(answer.json()["detail"])


async def test_env_set_list_unset_with_secrets_masked(client, shop):
    h = shop.headers
    patch = {"set": [{"key": "PLAIN", "value": "hello"},
                     {"key": "TOKEN", "value": "s3cr3t-value", "secret": True}]}
    answer = await client.patch(f"{SVC}/env", json=patch, headers=h)
    assert answer.status_code == 200
    listed = (await client.get(f"{SVC}/env", headers=h)).json()
    assert [(v["key"], v["value"], v["secret"]) for v in listed] == [
        ("PLAIN", "hello", False), ("TOKEN", "********", True)]
    one = await client.put(f"{SVC}/env/MULTI", json={"value": "line1\nline2"}, headers=h)
    assert one.json()["value"] == "line1\nline2"
    assert (await client.delete(f"{SVC}/env/PLAIN", headers=h)).status_code == 204
    assert (await client.delete(f"{SVC}/env/PLAIN", headers=h)).status_code == 404
    keys = [v["key"] for v in (await client.get(f"{SVC}/env", headers=h)).json()]
    assert keys == ["MULTI", "TOKEN"]


async def test_env_values_are_encrypted_at_rest(client, shop, platform):
    body = {"set": [{"key": "TOKEN", "value": "plain-s3cret", "secret": True},
                    {"key": "OPEN", "value": "visible-value"}]}
    await client.patch(f"{SVC}/env", json=body, headers=shop.headers)

    async def dump(s):  # type: ignore[no-untyped-def]
        rows = await s.execute(text("SELECT * FROM env_vars"))
        audit = await s.execute(text("SELECT before, after FROM audit_events"))
        return repr(rows.all()) + repr(audit.all())

    raw = await platform.db.read(dump)
    assert "plain-s3cret" not in raw
    assert "visible-value" not in raw


@pytest.mark.parametrize(("item", "fragment"), [
    ({"key": "lower", "value": "x"}, "uppercase letters"),
    ({"key": "1ABC", "value": "x"}, "not starting with a digit"),
    ({"key": "A-B", "value": "x"}, "uppercase letters"),
    ({"key": "NUL", "value": "a\u0000b"}, "NUL"),
    ({"key": "BIG", "value": "x" * (32 * 1024 + 1)}, "at most 32768"),
])
async def test_bad_env_input_changes_nothing(client, shop, item, fragment):
    good = {"key": "GOOD", "value": "1"}
    answer = await client.patch(f"{SVC}/env", json={"set": [good, item]}, headers=shop.headers)
    assert answer.status_code == 422
    assert fragment in str(answer.json()["detail"])
    assert (await client.get(f"{SVC}/env", headers=shop.headers)).json() == []


async def test_env_value_size_limit_counts_bytes(client, shop):
    value = "\u00e9" * (16 * 1024 + 1)  # fewer characters than the limit, more bytes
    answer = await client.put(f"{SVC}/env/WIDE", json={"value": value}, headers=shop.headers)
    assert answer.status_code == 422
    assert "larger than 32768 bytes" in answer.json()["detail"]


async def test_unpaired_surrogates_are_rejected_not_crashed(client, shop):
    raw = '{"value": "\\ud800"}'
    answer = await client.put(f"{SVC}/env/X", content=raw, headers={
        **shop.headers, "content-type": "application/json"})
    assert answer.status_code == 422
    assert "unicode string" in str(answer.json()["detail"])


async def test_setting_and_unsetting_one_key_at_once_is_refused(client, shop):
    body = {"set": [{"key": "A", "value": "1"}], "unset": ["A"]}
    answer = await client.patch(f"{SVC}/env", json=body, headers=shop.headers)
    assert answer.status_code == 422
    assert "both set and unset" in answer.json()["detail"]


async def test_history_records_who_when_before_and_after(client, shop):
    h = shop.headers
    await client.patch(f"{P}/shop", json={"description": "v2"}, headers=h)
    secret = {"value": "topsecret-value", "secret": True}
    await client.put(f"{SVC}/env/TOKEN", json=secret, headers=h)
    await client.delete(f"{P}/shop", headers=h)
    events = (await client.get("/api/v1/history", headers=h)).json()
    update = next(e for e in events if e["entity_type"] == "projects" and e["action"] == "update")
    assert update["before"]["description"] == ""
    assert update["after"]["description"] == "v2"
    assert update["actor_user_id"] == shop.user_id
    assert update["request_id"]
    deleted = {(e["entity_type"], e["action"]) for e in events}
    assert {("projects", "delete"), ("services", "delete"), ("env_vars", "delete")} <= deleted
    assert "topsecret-value" not in str(events)
    env_row = next(e for e in events if e["entity_type"] == "env_vars")
    assert env_row["before"]["value_ciphertext"] == "<hidden>"


async def test_history_can_be_filtered_and_paged(client, shop):
    h = shop.headers
    for n in range(3):
        await client.put(f"{SVC}/env/K{n}", json={"value": str(n)}, headers=h)
    page = (await client.get("/api/v1/history?entity_type=env_vars&limit=2", headers=h)).json()
    assert len(page) == 2
    rest = await client.get(f"/api/v1/history?entity_type=env_vars&before_id={page[-1]['id']}",
                            headers=h)
    assert len(rest.json()) == 1
    assert all(e["entity_type"] == "env_vars" for e in page + rest.json())


async def test_members_roles_and_the_last_owner(client, owner, member_of):
    h, ws = owner.headers, owner.workspace_id
    await member_of(Role.VIEWER, "new@example.com")  # invited, and accepted by its person
    again = await client.post(f"/api/v1/workspaces/{ws}/invitations", headers=h,
                              json={"email": "New@Example.com"})
    assert again.status_code == 409
    demote_self = await client.patch(f"/api/v1/workspaces/{ws}/members/{owner.user_id}",
                                     json={"role": "admin"}, headers=h)
    assert demote_self.status_code == 409
    assert "at least one owner" in demote_self.json()["detail"]
    admin = await member_of(Role.ADMIN)
    grant = await client.patch(f"/api/v1/workspaces/{ws}/members/{admin.user_id}",
                               json={"role": "owner"}, headers=admin.headers)
    assert grant.status_code == 403


async def test_body_over_the_limit_is_413(client, owner):
    huge = {"name": "x", "description": "y" * (2 * 1024 * 1024)}
    answer = await client.post(P, json=huge, headers=owner.headers)
    assert answer.status_code == 413
    assert "larger than" in answer.json()["detail"]


async def test_streamed_body_over_the_limit_is_413(client, owner):
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    answer = await client.post(P, content=chunks(), headers={
        **owner.headers, "content-type": "application/json"})
    assert answer.status_code == 413


async def test_provider_tokens_are_encrypted_masked_and_for_admins(
    client, owner, member_of, platform
):
    body = {"provider": "digitalocean", "token": "dop_v1_plaintoken"}
    member = await member_of(Role.MEMBER)
    refused = await client.put("/api/v1/infra/credentials/do", json=body, headers=member.headers)
    assert refused.status_code == 403
    stored = await client.put("/api/v1/infra/credentials/do", json=body, headers=owner.headers)
    assert stored.json()["token"] == "********"
    listed = await client.get("/api/v1/infra/credentials", headers=member.headers)
    assert [(c["name"], c["token"]) for c in listed.json()] == [("do", "********")]
    assert await provider_token(platform, owner.workspace_id, "do") == "dop_v1_plaintoken"

    async def dump(s):  # type: ignore[no-untyped-def]
        rows = await s.execute(text("SELECT * FROM provider_credentials"))
        audit = await s.execute(text("SELECT after FROM audit_events"))
        return repr(rows.all()) + repr(audit.all())

    assert "plaintoken" not in await platform.db.read(dump)
    bad = await client.put("/api/v1/infra/credentials/do", headers=owner.headers,
                           json={"provider": "aws", "token": "x"})
    assert bad.status_code == 422
