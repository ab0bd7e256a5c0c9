"""The suite's xdist groups (tests/host_group.py): a test that shares one of the machine's
one-of-a-kind parts with others must land in the group that runs them one at a time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.host_group import TESTS, uses_cluster, uses_host

MODULES = sorted(TESTS.rglob("test_*.py"))
USES_THE_CLUSTER_FIXTURE = re.compile(r"def \w+\([^)]*\bcluster: Cluster\b")


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name == "e2e"],
                         ids=lambda p: p.name)
def test_every_end_to_end_module_is_in_the_cluster_group(path: Path) -> None:
    assert uses_cluster(path)


def test_every_module_on_the_session_cluster_is_in_the_cluster_group() -> None:
    on_it = [p for p in MODULES if USES_THE_CLUSTER_FIXTURE.search(p.read_text())]
    assert TESTS / "agent" / "test_cluster_e2e.py" in on_it
    assert [p for p in on_it if not uses_cluster(p)] == []


@pytest.mark.parametrize(("module", "host"), [
    ("agent/test_processes.py", True),  # the machine's Docker, fixed container names
    ("system/test_up.py", True),
    ("backups/test_backup_flow.py", True),  # names Docker
    ("api/test_overview.py", False),
    ("queue/test_pure.py", False),
])
def test_a_module_is_in_the_host_group_when_it_uses_the_machine(module: str, host: bool
                                                                ) -> None:
    path = TESTS / module
    assert (uses_cluster(path), uses_host(path)) == (False, host)
