"""`dockyard servers upgrade [NAME|--all]` against a control plane started with `dockyard up`
(one for the module; each test has a workspace of its own, tests/cli/conftest.py):
a real agent running an older release (a copy of the code with one more file) is upgraded
in place to the control plane's code, each step printed; an agent running this code already
is skipped; bad requests are one line. (The refusal of an agent a package manager installed
is in tests/api/test_upgrades.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.agent import release
from dockyard.cli.resources import SERVER_COLUMNS, status_reasons
from dockyard.cli.sse import Event
from dockyard.cli.upgrade import line
from tests.agent.conftest import AgentProcess, spawn_agent
from tests.agent.test_upgrade import bundle_of, with_extra_file
from tests.agent.test_upgrade_inplace import ReleasedAgent, start_released_agent
from tests.cli.conftest import User
from tests.cli.test_output import _render
from tests.live import ok, ok_json, one_line_error


@pytest.fixture
def old_agent(user: User, tmp_path: Path) -> Iterator[ReleasedAgent]:
    """A released agent running an older release, adopted as server `node-1`."""
    key = bytes.fromhex(ok(user.run("servers", "agent-key")).strip())
    old = bundle_of(tmp_path, "old", with_extra_file("older"))
    agent = start_released_agent(tmp_path / "node-1", old, key)
    try:
        ok(user.run("servers", "add", "node-1", "--ip", "127.0.0.1", "--port", str(agent.port)))
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def packaged_agent(user: User, tmp_path: Path) -> Iterator[AgentProcess]:
    key = bytes.fromhex(ok(user.run("servers", "agent-key")).strip())
    agent = spawn_agent(tmp_path / "node-2", key)
    try:
        ok(user.run("servers", "add", "node-2", "--ip", "127.0.0.1", "--port", str(agent.port)))
        yield agent
    finally:
        agent.stop()


def test_an_outdated_agent_is_upgraded_in_place(user: User, old_agent: ReleasedAgent) -> None:
    [before] = ok_json(user.run("servers", "list", "--json"))
    assert before["agent_version"] != before["agent_expected_version"]
    assert before["agent_current"] is False
    said = ok(user.run("servers", "upgrade", "node-1")).splitlines()
    version = release.code_version()
    assert said == [f"node-1: uploading: from {before['agent_version']} to {version}",
                    "node-1: restarting: release switched; the agent restarts in place",
                    f"node-1: upgraded: agent {version} answers",
                    f"done: 1 server(s) run agent {version}"]
    [after] = ok_json(user.run("servers", "list", "--json"))
    assert (after["agent_version"], after["agent_current"]) == (version, True)
    assert old_agent.child.poll() is None
    assert "skipped: runs agent" in ok(user.run("servers", "upgrade", "--all"))
    assert "upgraded: agent" in ok(user.run("servers", "events", "node-1"))


def test_an_agent_running_this_code_already_is_skipped(
        user: User, packaged_agent: AgentProcess) -> None:
    said = ok(user.run("servers", "upgrade", "--all")).splitlines()
    assert said[0] == f"node-2: skipped: runs agent {release.code_version()} already"


def test_bad_requests_are_one_line(user: User) -> None:
    one_line_error(user.run("servers", "upgrade"), "name one server, or pass --all")
    one_line_error(user.run("servers", "upgrade", "node-9", "--all"), "name one server")
    one_line_error(user.run("servers", "upgrade", "nowhere"), "server 'nowhere' was not found")
    assert ok(user.run("servers", "upgrade", "--all")).splitlines() == [
        f"done: 0 server(s) run agent {release.code_version()}"]


def test_each_event_is_one_line() -> None:
    assert line(Event(None, "rolled_back", {"server": "n1", "message": "agent x answers"})) \
        == "n1: rolled back: agent x answers"
    assert line(Event(None, "done", {"server": None, "message": "0 server(s)"})) \
        == "done: 0 server(s)"


def test_an_outdated_agent_is_told_under_the_table_with_the_command() -> None:
    expected = {"agent_expected_version": "0.1.0+abcdef0123"}
    servers: list[dict[str, Any]] = [
        {"name": "web-1", "agent_version": "0.1.0+0123456789", "agent_current": False, **expected},
        {"name": "web-2", "agent_version": "0.1.0+abcdef0123", "agent_current": True, **expected},
        {"name": "web-3", "agent_version": None, "agent_current": False, **expected}]
    assert [line.splitlines() for line in status_reasons(servers)] == [[
        "web-1 runs agent 0.1.0+0123456789; this control plane's is 0.1.0+abcdef0123",
        "  (`dockyard servers upgrade web-1`)"]]


def test_servers_with_code_versions_fit_80_columns() -> None:
    server = {"id": "a" * 32, "name": "web-1", "ip": "10.231.0.11", "status": "unreachable",
              "agent_version": "0.1.0+0123456789", "agent_current": False,
              "agent_fingerprint": ":".join(["AB"] * 32)}
    lines = _render([server], SERVER_COLUMNS)
    assert max(len(line) for line in lines) <= 80
    assert lines[-2].split() == ["aaaaaaaa", "web-1", "10.231.0.11", "unreachable",
                                 "0.1.0+0123456789", "AB:AB:AB:AB"]
