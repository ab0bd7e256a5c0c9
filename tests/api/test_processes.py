"""ps, restart and run through the API without Docker: roles, workspaces, validation, and a
server that does not answer. With real agents they are proven in tests/e2e."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from dockyard.models.enums import Role
from dockyard.models.tables import Placement, Server, Service
from tests.api.test_deploys import add_server, closed_port

SVC = "/api/v1/projects/shop/services/web"


async def place(platform: Any, owner: Any) -> None:
    """Record that shop/web runs on node1."""
    async def tx(s: Any) -> None:
        server = await s.scalar(select(Server.id).where(Server.name == "node1"))
        service = await s.scalar(select(Service.id).where(Service.name == "web"))
        s.add(Placement(workspace_id=owner.workspace_id, service_id=service, server_id=server))

    await platform.db.write(tx)


async def test_ps_of_a_service_not_yet_deployed_is_empty(client, shop):
    answer = await client.get(f"{SVC}/processes", headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"processes": [], "unreachable": [], "drift": []}


async def test_ps_lists_a_server_that_does_not_answer_without_failing(client, shop, platform):
    await add_server(platform, shop, closed_port())
    await place(platform, shop)
    answer = await client.get(f"{SVC}/processes", headers=shop.headers)
    assert answer.status_code == 200, answer.text
    [down] = answer.json()["unreachable"]
    assert down["server"] == "node1"
    assert down["error"]


async def test_ps_says_where_a_server_differs_for_this_service(client, shop, platform):
    await add_server(platform, shop, closed_port())
    await place(platform, shop)
    since = "2026-12-02T01:00:00+00:00"
    drift = [{"subject": "shop-web-0badc0de", "message": "stray container", "since": since},
             {"subject": "shop-webshop-1", "message": "another service's", "since": since},
             {"subject": "shop-web-x-0badc0de", "message": "service web-x's", "since": since},
             {"subject": "shop-web-0badc0de-worker-2", "message": "a worker", "since": since},
             {"subject": "shop-web", "message": "site to re-point", "since": since}]

    async def tx(s: Any) -> None:
        server = await s.scalar(select(Server).where(Server.name == "node1"))
        server.drift = drift

    await platform.db.write(tx)
    answer = await client.get(f"{SVC}/processes", headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert [(d["server"], d["subject"]) for d in answer.json()["drift"]] == [
        ("node1", "shop-web-0badc0de"), ("node1", "shop-web-0badc0de-worker-2"),
        ("node1", "shop-web")]


@pytest.mark.parametrize("path", ["restart", "restart?type=worker", "run", "scale"])
async def test_restart_and_run_are_for_members_and_not_for_other_workspaces(
        client, shop, member_of, stranger, path):
    body = {"run": {"command": ["true"]}, "scale": {"scale": {"web": 2}}}.get(path)
    viewer = await member_of(Role.VIEWER)
    member = await member_of(Role.MEMBER)
    assert (await client.post(f"{SVC}/{path}", json=body, headers=stranger.headers)
            ).status_code == 404
    assert (await client.post(f"{SVC}/{path}", json=body, headers=viewer.headers)
            ).status_code == 403
    answer = await client.post(f"{SVC}/{path}", json=body, headers=member.headers)
    assert answer.status_code == 422, answer.text
    assert "no release yet" in answer.json()["detail"]


@pytest.mark.parametrize("body", [
    {"command": "sh -c 'ls'"}, {"command": []}, {"command": ["a\x00b"]},
    {"command": ["true"], "timeout_seconds": 0}, {"command": ["true"], "server": "../x"},
    {"command": ["true"], "shell": True}])
async def test_a_run_takes_an_argv_list_and_nothing_else(client, shop, body):
    answer = await client.post(f"{SVC}/run", json=body, headers=shop.headers)
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("body", [
    {"scale": {}}, {"scale": {"Web": 2}}, {"scale": {"web": 21}}, {"scale": {"web": -1}},
    {"scale": {"web": "2"}}, {"scale": {"web\n": 2}}, {"scale": {"web": 2}, "extra": 1}])
async def test_a_scale_takes_process_types_and_replica_counts_only(client, shop, body):
    answer = await client.post(f"{SVC}/scale", json=body, headers=shop.headers)
    assert answer.status_code == 422, answer.text


async def test_a_restart_names_a_process_type(client, shop):
    answer = await client.post(f"{SVC}/restart", params={"type": "Worker;"},
                               headers=shop.headers)
    assert answer.status_code == 422, answer.text


async def test_a_run_longer_than_the_setting_allows_is_refused(client, shop, settings):
    body = {"command": ["true"], "timeout_seconds": settings.run_timeout_seconds + 1}
    answer = await client.post(f"{SVC}/run", json=body, headers=shop.headers)
    assert answer.status_code == 422, answer.text
