"""The autoscale API: set, read, remove a policy; what it refuses, with a message a person can
act on; who may do what (real SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.enums import Role, ServiceKind
from dockyard.models.tables import Project, Service
from tests import sqlite_only

database_url = sqlite_only.database_url  # nothing here depends on the database kind

POLICY = "/api/v1/projects/shop/services/web/autoscale"


@pytest.fixture
async def shop(client: httpx.AsyncClient, owner: Any) -> Any:
    for path, body in (("/api/v1/projects", {"name": "shop"}),
                       ("/api/v1/projects/shop/services", {"name": "web"})):
        answer = await client.post(path, json=body, headers=owner.headers)
        assert answer.status_code == 201, answer.text
    return owner


async def test_a_policy_is_set_read_replaced_and_removed(client: httpx.AsyncClient,
                                                         shop: Any) -> None:
    answer = await client.put(POLICY, json={"min": 1, "max": 4, "target_rps": 20},
                              headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "project": "shop", "service": "web", "min": 1, "max": 4, "target_rps": 20.0,
        "target_cpu": None, "cooldown_seconds": 60, "enabled": True,
        "set_by": "owner@example.com", "last_scaled_at": None}
    replaced = await client.put(POLICY, json={"min": 2, "max": 3, "target_cpu": 70,
                                              "cooldown_seconds": 120}, headers=shop.headers)
    assert (replaced.json()["min"], replaced.json()["target_rps"],
            replaced.json()["target_cpu"]) == (2, None, 70.0)
    assert (await client.get(POLICY, headers=shop.headers)).json() == replaced.json()
    assert (await client.get(f"{POLICY}/decisions", headers=shop.headers)).json() == []
    assert (await client.delete(POLICY, headers=shop.headers)).status_code == 204
    gone = await client.get(POLICY, headers=shop.headers)
    assert gone.status_code == 404
    assert gone.json()["detail"] == "autoscale policy of service 'shop/web' was not found"


@pytest.mark.parametrize(("body", "says"), [
    ({"min": 3, "max": 2, "target_rps": 20}, "min (3) is more than max (2)"),
    ({"min": 1, "max": 4, "target_rps": 20, "target_cpu": 70}, "give exactly one target"),
    ({"min": 1, "max": 4}, "give exactly one target"),
    ({"min": 0, "max": 4, "target_rps": 20}, "greater than or equal to 1"),
    ({"min": 1, "max": 21, "target_rps": 20}, "less than or equal to 20"),
    ({"min": 1, "max": 4, "target_rps": 0}, "greater than 0"),
    ({"min": 1, "max": 4, "target_cpu": 70, "cooldown_seconds": 1}, "greater than or equal to 10"),
    ({"min": 1, "max": 4, "target_rps": 20, "replicas": 3}, "replicas"),
])
async def test_what_cannot_be_a_policy_is_refused(client: httpx.AsyncClient, shop: Any,
                                                  body: dict[str, Any], says: str) -> None:
    answer = await client.put(POLICY, json=body, headers=shop.headers)
    assert answer.status_code == 422, answer.text
    assert says in answer.text


async def test_a_stateful_service_is_not_auto_scaled(client: httpx.AsyncClient, shop: Any,
                                                      platform: Platform) -> None:
    async def add_postgres(s: AsyncSession) -> None:
        project = (await s.scalars(select(Project))).one()
        s.add(Service(workspace_id=shop.workspace_id, project_id=project.id, name="db",
                      kind=ServiceKind.POSTGRES))

    await platform.db.write(add_postgres)
    answer = await client.put("/api/v1/projects/shop/services/db/autoscale",
                              json={"min": 1, "max": 2, "target_cpu": 50}, headers=shop.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == ("shop/db is a postgres service; only the web processes "
                                       "of app services are auto-scaled")


async def test_a_viewer_reads_but_does_not_set_and_a_stranger_sees_nothing(
        client: httpx.AsyncClient, shop: Any, member_of: Any, stranger: Any) -> None:
    set_ = await client.put(POLICY, json={"min": 1, "max": 2, "target_rps": 5},
                            headers=shop.headers)
    assert set_.status_code == 200, set_.text
    viewer = await member_of(Role.VIEWER)
    assert (await client.get(POLICY, headers=viewer.headers)).status_code == 200
    refused = await client.put(POLICY, json={"min": 1, "max": 3, "target_rps": 5},
                               headers=viewer.headers)
    assert refused.status_code == 403
    assert (await client.delete(POLICY, headers=viewer.headers)).status_code == 403
    assert (await client.get(POLICY, headers=stranger.headers)).status_code == 404


async def test_a_deleted_service_takes_its_policy_along(client: httpx.AsyncClient,
                                                         shop: Any) -> None:
    set_ = await client.put(POLICY, json={"min": 1, "max": 2, "target_rps": 5},
                            headers=shop.headers)
    assert set_.status_code == 200, set_.text
    deleted = await client.delete("/api/v1/projects/shop/services/web", headers=shop.headers)
    assert deleted.status_code == 204, deleted.text
    history = await client.get("/api/v1/history", headers=shop.headers)
    kinds = [(e["entity_type"], e["action"]) for e in history.json()]
    assert ("autoscale_policies", "delete") in kinds, kinds
