"""`GET .../env` of an app lists the URLs its project's stateful services inject, marked as
such and with their passwords masked (shown to admins who ask); a variable of the user that
replaces one says which. Names that no rule could turn into a variable are refused at the
edge."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.core.servers import register_server
from dockyard.models.enums import Role, ServiceKind
from tests.injection_rows import add_stateful

P = "/api/v1/projects"
ENV = f"{P}/shop/services/web/env"
MASKED = "postgresql://postgres:********@postgres.shop.dockyard.internal:20001/postgres"
PG_URL = "postgresql://postgres:pw-postgres@postgres.shop.dockyard.internal:20001/postgres"


@pytest.fixture
async def linked(client: Any, shop: Any, platform: Any) -> Any:
    """shop has a Postgres `postgres` and a Redis `cache`; project other has a Redis."""
    await register_server(platform, shop.workspace_id, name="node1", provider="manual",
                          ip="10.0.0.1", agent_port=8421, agent_insecure_http=True)
    answer = await client.post(P, json={"name": "other"}, headers=shop.headers)
    assert answer.status_code == 201, answer.text
    for project, name, kind, port in (("shop", "postgres", ServiceKind.POSTGRES, 20001),
                                      ("shop", "cache", ServiceKind.REDIS, 20002),
                                      ("other", "redis", ServiceKind.REDIS, 20003)):
        await add_stateful(platform, shop.workspace_id, project, name, kind, "node1", port)
    return shop


def listed(answer: Any) -> dict[str, dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {row.pop("key"): row for row in answer.json()}


async def test_an_apps_env_lists_what_its_project_injects_masked(client: Any,
                                                                  linked: Any) -> None:
    answer = await client.put(f"{ENV}/DEBUG", json={"value": "1"}, headers=linked.headers)
    assert answer.status_code == 200, answer.text
    rows = listed(await client.get(ENV, headers=linked.headers))
    assert set(rows) == {"CACHE_URL", "DATABASE_URL", "DEBUG"}  # not other's REDIS_URL
    assert rows["DATABASE_URL"] == {
        "value": MASKED, "secret": True, "updated_at": None, "source": "injected",
        "stateful_service": "postgres"}
    assert rows["CACHE_URL"]["value"] == (
        "redis://:********@cache.shop.dockyard.internal:20002/0")
    assert (rows["DEBUG"]["source"], rows["DEBUG"]["stateful_service"]) == ("user", None)
    assert "pw-" not in str(rows)


async def test_a_variable_of_the_user_replaces_the_injected_one_and_says_which(
        client: Any, linked: Any) -> None:
    mine = {"value": "postgresql://me@db.example.test/shop"}
    answer = await client.put(f"{ENV}/DATABASE_URL", json=mine, headers=linked.headers)
    assert answer.status_code == 200, answer.text
    row = listed(await client.get(ENV, headers=linked.headers))["DATABASE_URL"]
    assert (row["value"], row["source"], row["stateful_service"]) == (
        mine["value"], "user", "postgres")


async def test_only_an_admin_sees_the_passwords(client: Any, linked: Any,
                                                member_of: Any) -> None:
    member = await member_of(Role.MEMBER)
    refused = await client.get(ENV, params={"show_secret": "true"}, headers=member.headers)
    assert refused.status_code == 403, refused.text
    assert "read the passwords of stateful services" in refused.text
    admin = await member_of(Role.ADMIN)
    shown = await client.get(ENV, params={"show_secret": "true"}, headers=admin.headers)
    assert listed(shown)["DATABASE_URL"]["value"] == PG_URL


async def test_a_stateful_service_is_given_nothing(client: Any, linked: Any) -> None:
    answer = await client.get(f"{P}/shop/services/cache/env", headers=linked.headers)
    assert listed(answer) == {}


@pytest.mark.parametrize("name", ["redis-", "Redis", "REDIS", "-redis", "redis_logs",
                                  "redis\n", "redis-Logs"])
async def test_a_name_no_variable_could_come_from_is_refused_at_the_edge(
        client: Any, shop: Any, name: str) -> None:
    for path in (f"{P}/shop/stateful", f"{P}/shop/services"):
        answer = await client.post(path, json={"name": name, "kind": "redis"},
                                   headers=shop.headers)
        assert answer.status_code == 422, (path, answer.text)
        assert "use 1-63 lowercase letters, digits or dashes" in answer.text, answer.text


async def test_a_project_redeploy_is_for_members_of_a_known_project(
        client: Any, shop: Any, member_of: Any) -> None:
    viewer = await member_of(Role.VIEWER)
    refused = await client.post(f"{P}/shop/redeploy", headers=viewer.headers)
    assert refused.status_code == 403, refused.text
    unknown = await client.post(f"{P}/nowhere/redeploy", headers=shop.headers)
    assert unknown.status_code == 404, unknown.text
    answer = await client.post(f"{P}/shop/redeploy", headers=shop.headers)
    assert (answer.status_code, answer.json()) == (200, [])  # web has no release yet
