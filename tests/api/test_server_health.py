"""A server's health comes from its node's data path: with the edge nginx down (its agent's
supervisor off, so that it stays down) the server is `degraded` with the reason, and
`active` again once the edge serves; a degraded server can still be deployed to."""

from __future__ import annotations

from typing import Any

from dockyard.agent.proxy import NginxInstance
from dockyard.core.agents import poll_all
from tests import sqlite_only
from tests.agent.test_supervise import kill_layer
from tests.api.test_servers import SERVERS, StartAgent, _agent_key, start_agent

database_url = sqlite_only.database_url  # nothing here depends on the database kind

__all__ = ["start_agent"]  # the fixture, used here by name
NO_SUPERVISION = {"DOCKYARD_AGENT_SUPERVISE_SECONDS": "0"}


async def adopted(client: Any, owner: Any, start_agent: StartAgent) -> tuple[Any, str]:
    agent = start_agent(await _agent_key(client, owner), env=NO_SUPERVISION)
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": agent.port}
    added = await client.post(SERVERS, json=body, headers=owner.headers)
    assert added.status_code == 201, added.text
    return agent, added.json()["id"]


async def check(client: Any, owner: Any, server_id: str) -> dict[str, Any]:
    answer = await client.post(f"{SERVERS}/{server_id}/check", headers=owner.headers)
    assert answer.status_code == 200, answer.text
    server: dict[str, Any] = answer.json()
    return server


async def test_a_dead_edge_makes_the_server_degraded_with_the_reason_until_it_serves(
    client, owner, start_agent
):
    agent, server_id = await adopted(client, owner, start_agent)
    assert (await check(client, owner, server_id))["status"] == "active"
    edge: NginxInstance = agent.proxy.edge
    kill_layer(edge)
    server = await check(client, owner, server_id)
    assert (server["status"], server["status_reason"]) == (
        "degraded", "edge nginx not running; edge nginx not answering: connection refused")
    listed = (await client.get(SERVERS, headers=owner.headers)).json()
    assert [(s["status"], s["status_reason"]) for s in listed] == [
        ("degraded", server["status_reason"])]
    agent.proxy.reload()  # what the supervisor does
    server = await check(client, owner, server_id)
    assert (server["status"], server["status_reason"]) == ("active", "")


async def test_the_poller_records_degraded_and_active_again(
    client, owner, start_agent, platform
):
    agent, _ = await adopted(client, owner, start_agent)
    kill_layer(agent.proxy.switch)
    [observation] = await poll_all(platform)
    assert (observation.status, observation.reason) == ("degraded", "switch nginx not running")
    agent.proxy.reload()
    [observation] = await poll_all(platform)
    assert (observation.status, observation.reason) == ("active", "")


async def test_an_unreachable_server_says_why(client, owner, start_agent):
    agent, server_id = await adopted(client, owner, start_agent)
    agent.stop()
    server = await check(client, owner, server_id)
    assert server["status"] == "unreachable"
    assert server["status_reason"].startswith("agent unreachable: ")


async def test_a_degraded_server_can_be_deployed_to(client, shop, start_agent):
    """A deploy may be what repairs its sites: it is not refused as `not active`."""
    agent, server_id = await adopted(client, shop, start_agent)
    kill_layer(agent.proxy.edge)
    assert (await check(client, shop, server_id))["status"] == "degraded"
    body = {"project": "shop", "service": "web", "servers": ["node-1"],
            "source": {"kind": "image", "image": "example/none:1"}}
    answer = await client.post("/api/v1/infra/deploy", json=body, headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert "pull failed" in answer.text  # it reached the server (which has no Docker)
