"""`dockyard servers drain NAME` / `undrain NAME` against a control plane started with
`dockyard up` and a real agent; `servers list` says which servers are drained and which
copies of services are down there, within 80 columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.cli.resources import status_reasons
from tests.agent.conftest import AgentProcess, spawn_agent
from tests.live import Live, ok, ok_json, one_line_error


@pytest.fixture
def agent_of(live: Live, tmp_path: Path) -> Iterator[AgentProcess]:
    """A real agent holding the live workspace's key, adopted as server `node-1`."""
    key = ok(live.run("servers", "agent-key")).strip()
    agent = spawn_agent(tmp_path / "agent", bytes.fromhex(key))
    try:
        ok(live.run("servers", "add", "node-1", "--ip", "127.0.0.1", "--port", str(agent.port)))
        yield agent
    finally:
        agent.stop()


def test_a_server_is_drained_and_undrained_by_name(live: Live, agent_of: AgentProcess) -> None:
    said = ok(live.run("servers", "drain", "node-1"))
    assert " ".join(said.split()) == (
        "Drained node-1: its services' traffic and DNS go to their other servers. "
        "`dockyard servers undrain node-1` takes them back.")
    [server] = ok_json(live.run("servers", "list", "--json"))
    assert (server["drained"], server["down_copies"]) == (True, [])
    assert "node-1 drained: its services' traffic goes to their other servers" in ok(
        live.run("servers", "list"))
    assert ok_json(live.run("servers", "undrain", "node-1", "--json"))["drained_at"] is None
    assert "drained" not in ok(live.run("servers", "list"))
    events = ok(live.run("servers", "events", "node-1"))
    assert "drained: its services' traffic and DNS go to their other servers" in events
    assert "undrained: it takes its services' traffic again" in events


def test_draining_an_unknown_server_is_one_line(live: Live) -> None:
    for action in ("drain", "undrain"):
        one_line_error(live.run("servers", action, "nowhere"), "no server named 'nowhere'",
                       "dockyard servers list")


def test_drained_servers_and_down_copies_are_told_under_the_table() -> None:
    down = {"service": "shop/web", "since": "2026-12-02T01:00:00Z",
            "reason": "agent unreachable (connection refused)"}
    servers = [{"name": "web-1", "status": "active", "drained": True, "down_copies": []},
               {"name": "web-2", "status": "unreachable", "drained": False,
                "down_copies": [down]}]
    assert status_reasons(servers) == [
        "web-1 drained: its services' traffic goes to their other servers",
        "web-2: copy of shop/web down: agent unreachable (connection refused)"]
