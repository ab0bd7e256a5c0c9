"""The server inventory with real agents: adopt, check, poll, agent key, remove."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dockyard import __version__
from dockyard.agent import auth
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.core.agents import poll_all
from dockyard.models.enums import Role
from tests.live import wait_until
from tests.pg import free_port

AGENT = str(Path(sys.executable).parent / "dockyard-agent")
SERVERS = "/api/v1/infra/servers"


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """Start a real `dockyard-agent` holding a hex key; return its port."""
    processes: list[subprocess.Popen[bytes]] = []
    proxies: list[Nginx] = []

    def start(key_hex: str) -> int:
        port, state = free_port(), tmp_path / f"agent-{len(processes)}"
        auth.write_key_file(state / "agent.key", bytes.fromhex(key_hex))
        http, https = free_port(), free_port()
        proxies.append(Nginx(NginxLayout(state / "nginx", http, https)))
        env = {"DOCKYARD_AGENT_PORT": str(port), "DOCKYARD_AGENT_STATE_DIR": str(state),
               "DOCKYARD_AGENT_DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
               "DOCKYARD_AGENT_NGINX_HTTP_PORT": str(http),
               "DOCKYARD_AGENT_NGINX_HTTPS_PORT": str(https),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        log = (state / "agent.log").open("wb")
        processes.append(subprocess.Popen([AGENT], env=env, stdout=log, stderr=log))
        wait_until(lambda: _answers(port) or processes[-1].poll() is not None, "the agent answers")
        assert processes[-1].poll() is None, (state / "agent.log").read_text()
        return port

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
    for proxy in proxies:
        proxy.stop()


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/info", timeout=1)
    except httpx.HTTPError:
        return False
    return True


async def _agent_key(client, account) -> str:  # type: ignore[no-untyped-def]
    answer = await client.get("/api/v1/infra/agent-key", headers=account.headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["key"])


async def test_an_adopted_server_with_the_workspace_key_is_active_and_current(
    client, owner, start_agent
):
    port = start_agent(await _agent_key(client, owner))
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": port, "provider": "manual"}
    added = await client.post(SERVERS, json=body, headers=owner.headers)
    assert added.status_code == 201
    assert added.json()["status"] == "pending"
    checked = await client.post(f"{SERVERS}/{added.json()['id']}/check", headers=owner.headers)
    server = checked.json()
    assert (server["status"], server["agent_version"]) == ("active", __version__)
    assert server["agent_expected_version"] == __version__
    assert server["agent_current"] is True


async def test_an_agent_with_another_key_or_none_listening_is_unreachable(
    client, owner, start_agent, platform
):
    port = start_agent("00" * 32)
    for name, agent_port in (("wrong-key", port), ("nobody", free_port())):
        body = {"name": name, "ip": "127.0.0.1", "agent_port": agent_port}
        assert (await client.post(SERVERS, json=body, headers=owner.headers)).status_code == 201
    observations = await poll_all(platform)
    assert {o.status.value for o in observations} == {"unreachable"}
    listed = (await client.get(SERVERS, headers=owner.headers)).json()
    assert {(s["name"], s["agent_current"]) for s in listed} == {
        ("wrong-key", False), ("nobody", False)}


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
])
async def test_bad_server_input_is_rejected(client, owner, body, status):
    assert (await client.post(SERVERS, json=body, headers=owner.headers)).status_code == status
    assert (await client.get(SERVERS, headers=owner.headers)).json() == []


async def test_servers_are_for_admins_to_add_and_remove(client, owner, member_of):
    body = {"name": "n1", "ip": "10.0.0.1"}
    member = await member_of(Role.MEMBER)
    assert (await client.post(SERVERS, json=body, headers=member.headers)).status_code == 403
    added = await client.post(SERVERS, json=body, headers=owner.headers)
    again = await client.post(SERVERS, json=body, headers=owner.headers)
    assert again.status_code == 409
    path = f"{SERVERS}/{added.json()['id']}"
    assert (await client.delete(path, headers=member.headers)).status_code == 403
    assert (await client.delete(path, headers=owner.headers)).status_code == 204
    assert (await client.get(path, headers=owner.headers)).status_code == 404
