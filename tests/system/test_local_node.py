"""`dockyard up --local-node`: this machine becomes server 'local' of the first workspace."""

from __future__ import annotations

import socket
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import tls
from dockyard.agent.release import code_version
from tests.agent.conftest import base_tarball, require_the_real_stack
from tests.live import bring_up, dockyard, ok, ok_json, start, stop, wait_until
from tests.pg import free_port

pytestmark = pytest.mark.slow
__all__ = ["base_tarball"]


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"
SITE = "example-hello"


def _greeting(http_port: int) -> str:
    answer = httpx.get(f"http://127.0.0.1:{http_port}/api",
                       headers={"Host": "hello.example.localhost"}, timeout=5)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["greeting"])


def _remove_example_containers() -> None:
    with docker.APIClient() as engine:
        for found in engine.containers(all=True, filters={"label": f"dockyard.service={SITE}"}):
            engine.remove_container(found["Id"], force=True)


def _deploy_change_and_roll_back(env: dict[str, str], http_port: int) -> None:
    """What scripts/up does, then an env change and a rollback, all through the CLI."""
    deployed = ok(dockyard("deploy", str(EXAMPLE), "-p", "example", "-s", "hello", "--create",
                           env=env, timeout=300))
    assert "Open http://hello.example.localhost/" in deployed
    assert _greeting(http_port) == "Hello from Dockyard"
    ok(dockyard("env", "set", "GREETING=changed", "-p", "example", "-s", "hello", env=env,
                timeout=300))
    assert _greeting(http_port) == "changed"
    releases = ok_json(dockyard("releases", "-p", "example", "-s", "hello", "--json", env=env))
    assert [(r["source_kind"], r["live"]) for r in releases] == [("release", True),
                                                                 ("archive", False)]
    ok(dockyard("rollback", "-p", "example", "-s", "hello", env=env, timeout=300))
    assert _greeting(http_port) == "Hello from Dockyard"


def test_up_runs_this_machine_as_a_server_deploys_to_it_and_down_stops_its_agent(
        tmp_path: Path, base_tarball: object) -> None:
    require_the_real_stack()
    env, _ = start(tmp_path / "live")
    agent_port, http_port = free_port(), free_port()
    env.update({"DOCKYARD_LOCAL_NODE": "true", "DOCKYARD_LOCAL_AGENT_PORT": str(agent_port),
                "DOCKYARD_LOCAL_HTTP_PORT": str(http_port),
                "DOCKYARD_LOCAL_HTTPS_PORT": str(free_port()),
                "DOCKYARD_REGISTRY": f"127.0.0.1:{free_port()}"})
    try:
        output = bring_up(env)
        assert f"This machine is server 'local' (agent {code_version()}" in output
        servers = ok_json(dockyard("servers", "list", "--json", env=env))
        assert [(s["name"], s["provider"], s["status"], s["agent_current"])
                for s in servers] == [("local", "local", "active", True)]
        certificate = tls.CertificateFiles(Path(env["DOCKYARD_DATA_DIR"]) / "local-agent")
        assert servers[0]["agent_fingerprint"] == tls.fingerprint_of_file(
            certificate.certificate)
        again = bring_up(env)  # a second `up` neither restarts nor re-registers it
        assert "already running" in again
        assert len(ok_json(dockyard("servers", "list", "--json", env=env))) == 1
        _deploy_change_and_roll_back(env, http_port)
    finally:
        ok(dockyard("down", "--local-node", env=env))
        stop(env)
        _remove_example_containers()
    wait_until(lambda: _port_closed(agent_port), "the local agent's port is closed")
    wait_until(lambda: _port_closed(http_port), "the local nginx's port is closed")
