"""Which tests share this machine's one-of-a-kind parts. `bash scripts/test` runs the suite
on three xdist workers (`-n 3 --dist loadgroup`) with two groups, each run one test after
another by one worker, in collection order:
- "cluster": the end-to-end modules and the agent's cluster tests. Their control planes,
  dockerds, nginx and agents live in network namespaces of a subnet of their own; the e2e
  modules share one stage (tests/e2e/conftest.py), the agent's the session `cluster`.
- "host": the tests that use this machine's Docker, nginx, systemd, firewall or fixed ports.
  A test is put here when in doubt: a test module or conftest.py that names one of these
  parts, or a folder whose fixtures start them.
The other tests (their own SQLite file or Postgres database, free ports) spread over the
workers. The groups are chosen by the tests' paths in a scheduler of our own: xdist 3.8's
`xdist_group` mark renames node ids, which pytest 9.2 no longer reads."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

HOST, CLUSTER = "host", "cluster"
CLUSTER_MODULES = ("e2e/", "agent/test_cluster_e2e.py")
TESTS = Path(__file__).parent
HOST_FOLDERS = ("e2e", "deploy", "agent", "system", "providers", "logs", "fakes", "api/provision")
HOST_WORDS = re.compile(
    r"docker|nginx|cluster|netns|iptables|firewall|systemd|spawn_agent|agent_process|"
    r"real_agent|droplet|pebble|stage", re.IGNORECASE)
# Read through: these name such a part only as an image (nginx:1.27), a class name or a word
# in a message or docstring, and run their API in-process or on free ports.
NAMES_ONLY = frozenset({
    "api/test_fields.py", "api/test_isolation.py", "api/test_resources.py",
    "api/test_deploys.py", "api/test_processes.py", "api/test_schema_fuzz.py",
    "cli/test_cli.py", "cli/test_logs_cli.py", "cli/test_output.py"})


@cache
def _names_host_parts(path: Path) -> bool:
    return path.is_file() and HOST_WORDS.search(path.read_text()) is not None


def _in_host_folder(path: Path) -> bool:
    relative = path.relative_to(TESTS).as_posix()
    return any(relative.startswith(f"{folder}/") for folder in HOST_FOLDERS)


def uses_cluster(path: Path) -> bool:
    """True when the test module at `path` brings up or uses a namespace cluster."""
    relative = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
    return relative.startswith(CLUSTER_MODULES)


def uses_host(path: Path) -> bool:
    """True when the test module at `path` may touch a part of the machine shared by all."""
    if not path.is_relative_to(TESTS) or _in_host_folder(path):
        return True
    if path.relative_to(TESTS).as_posix() in NAMES_ONLY:
        return False
    if _names_host_parts(path):
        return True
    folders = [folder for folder in path.parents if folder.is_relative_to(TESTS)]
    return any(_names_host_parts(folder / "conftest.py") for folder in folders)


class HostGroupScheduling(LoadScopeScheduling):
    """Load scheduling with the cluster's tests in one unit and those that use the host in
    another, largest unit first."""

    def _split_scope(self, nodeid: str) -> str:
        path = self.config.rootpath / nodeid.split("::", 1)[0]
        if uses_cluster(path):
            return CLUSTER
        return HOST if uses_host(path) else nodeid
