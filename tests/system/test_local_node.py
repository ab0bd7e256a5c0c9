"""`dockyard up --local-node`: this machine becomes server 'local' of the first workspace."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dockyard import __version__
from tests.agent.conftest import require_the_real_stack
from tests.live import bring_up, dockyard, ok, ok_json, start, stop, wait_until
from tests.pg import free_port

pytestmark = pytest.mark.slow


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_up_runs_this_machine_as_a_server_and_down_stops_its_agent(tmp_path: Path) -> None:
    require_the_real_stack()
    env, _ = start(tmp_path / "live")
    agent_port, http_port = free_port(), free_port()
    env.update({"DOCKYARD_LOCAL_NODE": "true", "DOCKYARD_LOCAL_AGENT_PORT": str(agent_port),
                "DOCKYARD_LOCAL_HTTP_PORT": str(http_port)})
    try:
        output = bring_up(env)
        assert f"This machine is server 'local' (agent {__version__}" in output
        servers = ok_json(dockyard("servers", "list", "--json", env=env))
        assert [(s["name"], s["provider"], s["status"], s["agent_current"])
                for s in servers] == [("local", "local", "active", True)]
        again = bring_up(env)  # a second `up` neither restarts nor re-registers it
        assert "already running" in again
        assert len(ok_json(dockyard("servers", "list", "--json", env=env))) == 1
    finally:
        ok(dockyard("down", "--local-node", env=env))
        stop(env)
    wait_until(lambda: _port_closed(agent_port), "the local agent's port is closed")
    wait_until(lambda: _port_closed(http_port), "the local nginx's port is closed")
