"""A provisioned server's containers kept from the cloud's metadata service: the exact argv,
the agent putting the rules in place at each start (once) with real iptables in a network
namespace of the test's own, and a start whose iptables fails reported in the node's health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.agent import process
from dockyard.agent.firewall import Firewall
from dockyard.agent.metadata_block import block_specs
from dockyard.agent.models import FirewallRule
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.state import StateFile
from dockyard.providers import netns
from tests.agent.test_firewall import iptables_in, listing

MARKED = ["-m", "comment", "--comment", "dockyard-metadata"]
REJECTED = [f"-A DOCKER-USER -d 169.254.169.254/32 -i {bridge} "
            "-m comment --comment dockyard-metadata -j REJECT --reject-with icmp-port-unreachable"
            for bridge in ("br-+", "docker0")]


def test_what_the_bridges_send_to_the_metadata_service_is_rejected() -> None:
    assert block_specs() == [
        ["-i", "docker0", "-d", "169.254.169.254/32", *MARKED, "-j", "REJECT"],
        ["-i", "br-+", "-d", "169.254.169.254/32", *MARKED, "-j", "REJECT"],
    ]


@pytest.fixture
def namespace() -> Iterator[str]:
    name = "dymd-test"
    process.run(netns.delete_namespace(name))
    process.check(netns.add_namespace(name))
    try:
        yield name
    finally:
        process.check(netns.delete_namespace(name))


def node_in(namespace: str, state_dir: Path, nginx: Nginx | None = None,
            block: bool = True) -> Node:
    return Node(state_dir=state_dir, certs_dir=state_dir / "certs",
                runtime=DockerRuntime(f"unix://{state_dir}/no-docker.sock"),
                nginx=nginx or Nginx(NginxLayout(state_dir / "nginx")),
                state_file=StateFile(state_dir / "desired-state.json"),
                firewall=Firewall(iptables_in(namespace)), block_metadata=block)


def metadata_rules(namespace: str) -> list[str]:
    lines = process.check([*iptables_in(namespace), "-S"]).output.splitlines()
    return [line for line in lines if "dockyard-metadata" in line]


async def test_each_start_puts_the_rules_in_place_once(
    namespace: str, tmp_path: Path, nginx: Nginx
) -> None:
    await node_in(namespace, tmp_path, nginx).restore()
    first = metadata_rules(namespace)
    assert first == REJECTED
    node = node_in(namespace, tmp_path, nginx)
    await node.restore()
    assert metadata_rules(namespace) == first
    assert node.start_problems == []


async def test_the_rules_sit_beside_the_published_ports_chain(
    namespace: str, tmp_path: Path, nginx: Nginx
) -> None:
    node = node_in(namespace, tmp_path, nginx)
    await node.apply_firewall_rule(FirewallRule(name="db", port=20001))
    await node.restore()
    assert [line for line in listing(namespace) if line.startswith("-A DOCKER-USER")] == [
        *REJECTED, "-A DOCKER-USER -j DOCKYARD-SERVICES"]


async def test_a_node_not_asked_to_block_adds_nothing(
    namespace: str, tmp_path: Path, nginx: Nginx
) -> None:
    await node_in(namespace, tmp_path, nginx, block=False).restore()
    assert metadata_rules(namespace) == []


async def test_iptables_failing_at_start_is_a_health_problem_not_a_crash(
    tmp_path: Path, nginx: Nginx
) -> None:
    node = node_in("dymd-no-such-namespace", tmp_path, nginx)
    await node.restore()
    health = await node.node_health()
    assert health.problems[0].startswith(
        "containers can reach the cloud metadata service: iptables -I DOCKER-USER -i docker0 "
        "-d 169.254.169.254/32 -m comment --comment dockyard-metadata -j REJECT failed: nsenter")
