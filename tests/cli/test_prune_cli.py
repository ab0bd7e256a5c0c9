"""`dockyard servers prune NAME` against a control plane started with `dockyard up` and a real
agent process whose Docker is a daemon of the test's own (its data root a tmpfs, see
tests/deploy/test_disk_guard.py): the agent removes the app's old release images now, whatever
its threshold, the CLI says what that freed, and the cleaning is among the server's events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProcess, spawn_agent
from tests.deploy.test_disk_guard import (  # noqa: F401  (fixtures)
    OwnDocker,
    cleared,
    left,
    own_docker,
    release_images,
)
from tests.live import Live, ok, ok_json, one_line_error


@pytest.fixture
def agent_of(live: Live, tmp_path: Path, cleared: OwnDocker) -> Iterator[AgentProcess]:  # noqa: F811
    """A real agent on the test's Docker, keeping 2 release images, adopted as `node-1`."""
    key = ok(live.run("servers", "agent-key")).strip()
    env = {"DOCKYARD_AGENT_DOCKER_HOST": cleared.url,
           "DOCKYARD_AGENT_DISK_CLEANUP_KEEP_RELEASES": "2"}
    agent = spawn_agent(tmp_path / "agent", bytes.fromhex(key), env=env)
    try:
        ok(live.run("servers", "add", "node-1", "--ip", "127.0.0.1", "--port", str(agent.port)))
        yield agent
    finally:
        agent.stop()


def test_a_server_is_pruned_by_name(live: Live, agent_of: AgentProcess,
                                    cleared: OwnDocker) -> None:  # noqa: F811
    old = release_images(cleared, 4)
    said = " ".join(ok(live.run("servers", "prune", "node-1")).split())
    assert said.startswith("node-1: disk "), said
    assert ("cleaned on request: removed 2 old release image tags, 0 dangling images and 0 "
            "stopped containers, freeing about ") in said
    assert left(cleared)[0] == old[2:]
    again = ok_json(live.run("servers", "prune", "node-1", "--json"))
    assert (again["trigger"], again["release_tags_removed"]) == ("request", [])
    events = ok_json(live.run("servers", "events", "node-1", "--json"))["events"]
    [first, second] = [x["message"] for x in events if x["kind"] == "disk"]
    assert first.endswith(said.removeprefix("node-1: ").removesuffix("."))
    assert "removed 0 old release image tags" in second


def test_pruning_an_unknown_server_is_one_line(live: Live) -> None:
    one_line_error(live.run("servers", "prune", "nowhere"), "no server named 'nowhere'",
                   "dockyard servers list")
