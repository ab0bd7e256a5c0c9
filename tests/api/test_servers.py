"""The server inventory with real agents: adopt (pinning the agent's certificate), check,
poll, agent key, remove; IPv6 agents; a replaced certificate refused."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.agent import tls
from dockyard.agent.release import code_version
from dockyard.core.agents import poll_all
from dockyard.models.enums import Role
from tests import sqlite_only
from tests.agent.conftest import AgentProcess, spawn_agent
from tests.pg import free_port

database_url = sqlite_only.database_url  # nothing here depends on the database kind

SERVERS = "/api/v1/infra/servers"
StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    """Start real `dockyard-agent`s holding a hex key; all stopped afterwards."""
    started: list[AgentProcess] = []

    def start(key_hex: str, **options: Any) -> AgentProcess:
        state_dir = tmp_path / f"agent-{len(started)}"
        started.append(spawn_agent(state_dir, bytes.fromhex(key_hex), **options))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


async def _agent_key(client, account) -> str:  # type: ignore[no-untyped-def]
    answer = await client.get("/api/v1/infra/agent-key", headers=account.headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


async def test_an_adopted_server_with_the_workspace_key_is_active_and_current(
    client, owner, start_agent
):
    agent = start_agent(await _agent_key(client, owner))
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": agent.port, "provider": "manual"}
    added = await client.post(SERVERS, json=body, headers=owner.headers)
    assert added.status_code == 201
    assert added.json()["status"] == "pending"
    assert added.json()["agent_fingerprint"] == tls.fingerprint_of_file(
        tls.CertificateFiles(agent.state_dir).certificate)
    assert added.json()["agent_insecure_http"] is False
    checked = await client.post(f"{SERVERS}/{added.json()['id']}/check", headers=owner.headers)
    server = checked.json()
    assert (server["status"], server["agent_version"]) == ("active", code_version())
    assert server["agent_expected_version"] == code_version()
    assert server["agent_current"] is True


async def test_an_agent_with_another_key_or_none_listening_is_unreachable(
    client, owner, start_agent, platform
):
    agent = start_agent("00" * 32)
    for name, agent_port in (("wrong-key", agent.port), ("nobody", free_port())):
        body = {"name": name, "ip": "127.0.0.1", "agent_port": agent_port, "insecure_http": True}
        assert (await client.post(SERVERS, json=body, headers=owner.headers)).status_code == 201
    observations = await poll_all(platform)
    assert {o.status.value for o in observations} == {"unreachable"}
    listed = (await client.get(SERVERS, headers=owner.headers)).json()
    assert {(s["name"], s["agent_current"]) for s in listed} == {
        ("wrong-key", False), ("nobody", False)}


async def test_an_agent_whose_certificate_changed_is_refused_naming_both(
    client, owner, start_agent, caplog
):
    key = await _agent_key(client, owner)
    agent = start_agent(key)
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": agent.port}
    added = (await client.post(SERVERS, json=body, headers=owner.headers)).json()
    pinned = added["agent_fingerprint"]
    replaced = start_agent(key)  # another state dir: another certificate
    body = {**body, "name": "node-2", "agent_port": replaced.port, "agent_fingerprint": pinned}
    impostor = (await client.post(SERVERS, json=body, headers=owner.headers)).json()
    with caplog.at_level(logging.WARNING, logger="dockyard.fleet"):
        checked = await client.post(f"{SERVERS}/{impostor['id']}/check", headers=owner.headers)
    assert checked.json()["status"] == "unreachable"
    [warning] = [r.getMessage() for r in caplog.records if r.name == "dockyard.fleet"]
    presented = tls.fetch_fingerprint("127.0.0.1", replaced.port)
    assert pinned in warning
    assert presented in warning


async def test_an_admin_pins_a_replaced_certificate_again(
    client, owner, start_agent, member_of
):
    key = await _agent_key(client, owner)
    old, replaced = start_agent(key), start_agent(key)
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": replaced.port,
            "agent_fingerprint": tls.fetch_fingerprint("127.0.0.1", old.port)}
    added = await client.post(SERVERS, json=body, headers=owner.headers)
    server_path = f"{SERVERS}/{added.json()['id']}"
    member = await member_of(Role.MEMBER)
    assert (await client.post(f"{server_path}/pin", headers=member.headers)).status_code == 403
    pinned = await client.post(f"{server_path}/pin", headers=owner.headers)
    assert pinned.json()["agent_fingerprint"] == tls.fetch_fingerprint("127.0.0.1", replaced.port)
    checked = await client.post(f"{server_path}/check", headers=owner.headers)
    assert checked.json()["status"] == "active"
    given = await client.post(f"{server_path}/pin", headers=owner.headers,
                              params={"fingerprint": body["agent_fingerprint"]})
    assert given.json()["agent_fingerprint"] == body["agent_fingerprint"]
    bad = await client.post(f"{server_path}/pin", headers=owner.headers,
                            params={"fingerprint": "AB:CD"})
    assert bad.status_code == 422
    old.stop()
    replaced.stop()
    gone = await client.post(f"{server_path}/pin", headers=owner.headers)
    assert gone.status_code == 409
    assert "could not read the TLS certificate" in gone.json()["detail"]


async def test_adoption_checks_a_given_fingerprint_only_by_its_form(client, owner):
    for fingerprint in ("AB:CD", "ab" + ":ab" * 31, "AB" + ":AB" * 31 + "\n"):
        body = {"name": "n", "ip": "10.0.0.1", "agent_fingerprint": fingerprint}
        answer = await client.post(SERVERS, json=body, headers=owner.headers)
        assert answer.status_code == 422, fingerprint


async def test_adopting_without_an_agent_to_pin_says_what_to_do(client, owner):
    body = {"name": "n", "ip": "127.0.0.1", "agent_port": free_port()}
    answer = await client.post(SERVERS, json=body, headers=owner.headers)
    assert answer.status_code == 409
    assert "agent_fingerprint" in answer.text
    assert (await client.get(SERVERS, headers=owner.headers)).json() == []


async def test_an_ipv6_server_is_checked_and_polled_like_any_other(
    client, owner, start_agent, platform
):
    agent = start_agent(await _agent_key(client, owner), host="::1")
    for name, port in (("v6", agent.port), ("v6-silent", free_port())):
        body = {"name": name, "ip": "::1", "agent_port": port, "insecure_http": name != "v6"}
        added = await client.post(SERVERS, json=body, headers=owner.headers)
        assert added.status_code == 201, added.text
        checked = await client.post(f"{SERVERS}/{added.json()['id']}/check",
                                    headers=owner.headers)
        assert checked.status_code == 200, checked.text
    observations = await poll_all(platform)
    assert sorted(o.status.value for o in observations) == ["active", "unreachable"]


async def test_an_agent_without_tls_is_reached_only_when_allowed(client, owner, start_agent):
    agent = start_agent(await _agent_key(client, owner), tls=False)
    body = {"name": "plain", "ip": "127.0.0.1", "agent_port": agent.port}
    refused = await client.post(SERVERS, json=body, headers=owner.headers)
    assert refused.status_code == 409
    added = await client.post(SERVERS, json={**body, "insecure_http": True},
                              headers=owner.headers)
    checked = await client.post(f"{SERVERS}/{added.json()['id']}/check", headers=owner.headers)
    assert checked.json()["status"] == "active"


async def test_the_agent_key_is_stable_admin_only_and_differs_per_workspace(
    client, owner, member_of, stranger
):
    first = await _agent_key(client, owner)
    assert first == await _agent_key(client, owner)
    assert len(first) == 64
    assert first != await _agent_key(client, stranger)
    member = await member_of(Role.MEMBER)
    refused = await client.get("/api/v1/infra/agent-key", headers=member.headers)
    assert refused.status_code == 403


@pytest.mark.parametrize(("body", "status"), [
    ({"name": "n", "ip": "not-an-ip"}, 422),
    ({"name": "n", "ip": "10.0.0.1", "agent_port": 70000}, 422),
    ({"name": "Bad Name", "ip": "10.0.0.1"}, 422),
    ({"name": "n", "ip": "10.0.0.1", "provider": "digitalocean"}, 422),
    ({"name": "n", "ip": "10.0.0.1", "insecure_http": "maybe"}, 422),
])
async def test_bad_server_input_is_rejected(client, owner, body, status):
    assert (await client.post(SERVERS, json=body, headers=owner.headers)).status_code == status
    assert (await client.get(SERVERS, headers=owner.headers)).json() == []


async def test_servers_are_for_admins_to_add_and_remove(client, owner, member_of):
    body = {"name": "n1", "ip": "10.0.0.1", "insecure_http": True}
    member = await member_of(Role.MEMBER)
    assert (await client.post(SERVERS, json=body, headers=member.headers)).status_code == 403
    added = await client.post(SERVERS, json=body, headers=owner.headers)
    again = await client.post(SERVERS, json=body, headers=owner.headers)
    assert again.status_code == 409
    path = f"{SERVERS}/{added.json()['id']}"
    assert (await client.delete(path, headers=member.headers)).status_code == 403
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404
