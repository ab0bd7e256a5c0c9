"""The agent's firewall for published ports: the exact iptables argv, and the agent applying,
replacing, removing and restoring rule sets with real iptables in a network namespace of
the test's own (packets through Docker's DNAT: tests/e2e/test_firewall_e2e.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from dockyard.agent import auth, process
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.firewall import (
    Firewall,
    append_rules,
    head_in_place,
    insert_head,
    jump,
    numbers_of,
    rule_specs,
)
from dockyard.agent.models import FirewallRule
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.settings import AgentSettings
from dockyard.agent.state import StateFile
from dockyard.providers import netns
from tests.agent.conftest import SECRET, signed_headers

DB = FirewallRule(name="db", port=20001, allow=["10.0.0.11", "10.0.0.13"])
MATCH_DB = ["-p", "tcp", "-m", "conntrack", "--ctorigdstport", "20001", "--ctdir", "ORIGINAL",
            "-m", "comment", "--comment", "dockyard:db"]


# The pure part: argv and listings


def test_a_rule_set_lets_each_source_through_then_drops_the_rest() -> None:
    assert rule_specs(DB) == [
        ["-s", "10.0.0.11/32", *MATCH_DB, "-j", "RETURN"],
        ["-s", "10.0.0.13/32", *MATCH_DB, "-j", "RETURN"],
        [*MATCH_DB, "-j", "DROP"],
    ]


def test_rules_are_appended_to_our_chain_once_per_source() -> None:
    twice = FirewallRule(name="db", port=20001, allow=["10.0.0.11", "10.0.0.11/32"])
    assert append_rules(twice) == [
        ["-A", "DOCKYARD-SERVICES", "-s", "10.0.0.11/32", *MATCH_DB, "-j", "RETURN"],
        ["-A", "DOCKYARD-SERVICES", *MATCH_DB, "-j", "DROP"],
    ]


def test_an_empty_allow_list_leaves_only_the_node_itself() -> None:
    assert rule_specs(FirewallRule(name="db", port=20001)) == [[*MATCH_DB, "-j", "DROP"]]


def test_the_head_lets_local_bridges_on_and_drops_what_docker_did_not_dnat_into_them() -> None:
    new_not_dnat = ["-m", "conntrack", "--ctstate", "NEW", "-m", "conntrack", "!",
                    "--ctstate", "DNAT"]
    marked = ["-m", "comment", "--comment", "dockyard-node"]
    assert insert_head() == [
        ["-I", "DOCKYARD-SERVICES", "1", "-i", "docker0", *marked, "-j", "RETURN"],
        ["-I", "DOCKYARD-SERVICES", "2", "-i", "br-+", *marked, "-j", "RETURN"],
        ["-I", "DOCKYARD-SERVICES", "3", "-o", "docker0", *new_not_dnat, *marked, "-j", "DROP"],
        ["-I", "DOCKYARD-SERVICES", "4", "-o", "br-+", *new_not_dnat, *marked, "-j", "DROP"],
    ]


def test_the_jump_from_docker_user() -> None:
    assert jump("-C") == ["-C", "DOCKER-USER", "-j", "DOCKYARD-SERVICES"]
    assert jump("-I") == ["-I", "DOCKER-USER", "-j", "DOCKYARD-SERVICES"]


LISTING = """-N DOCKYARD-SERVICES
-A DOCKYARD-SERVICES -i docker0 -p tcp -m comment --comment "dockyard:db" -j RETURN
-A DOCKYARD-SERVICES -i docker0 -p tcp -m comment --comment "dockyard:db-2" -j RETURN
-A DOCKYARD-SERVICES -p tcp -m comment --comment dockyard:db -j DROP
-A DOCKYARD-SERVICES -p tcp -j DROP
-A DOCKYARD-SERVICES -p tcp -m comment --comment "dockyard:db" -j DROP
"""


def test_the_numbers_of_a_set_are_exact_and_highest_first() -> None:
    assert numbers_of(LISTING, "db") == [5, 3, 1]
    assert numbers_of(LISTING, "db-2") == [2]
    assert numbers_of(LISTING, "d") == []


HEAD = "-A DOCKYARD-SERVICES -i docker0 -m comment --comment dockyard-node -j RETURN"


@pytest.mark.parametrize(("listing", "in_place"), [
    ("-N DOCKYARD-SERVICES\n" + "\n".join([HEAD] * 4), True),
    ("-N DOCKYARD-SERVICES\n" + "\n".join([HEAD] * 3), False),
    ("-N DOCKYARD-SERVICES\n" + "\n".join([HEAD] * 5), False),
    (LISTING + "\n".join([HEAD] * 4), False),
    ("-N DOCKYARD-SERVICES\n", False),
])
def test_the_head_is_in_place_only_as_the_first_four_rules(listing: str, in_place: bool) -> None:
    assert head_in_place(listing) is in_place


@pytest.mark.parametrize("source", ["10.0.0.1 -j ACCEPT", "10.0.0.1\n", "10.0.0.1/24",
                                    "::1", "web.example", "010.0.0.1", "", "10.0.0.0/33"])
def test_a_source_must_be_an_ipv4_address_or_network(source: str) -> None:
    with pytest.raises(ValidationError, match="IPv4 address or network"):
        FirewallRule(name="db", port=20001, allow=[source])


def test_sources_are_kept_as_iptables_prints_them() -> None:
    rule = FirewallRule(name="db", port=20001, allow=["10.0.0.1", "10.1.0.0/16"])
    assert rule.allow == ["10.0.0.1/32", "10.1.0.0/16"]


@pytest.mark.parametrize("fields", [{"name": "db;x"}, {"name": "db x"}, {"name": "-j"},
                                    {"port": 0}, {"port": 65536}, {"protocol": "udp"},
                                    {"allow": ["10.0.0.1"] * 1001}, {"chain": "INPUT"}])
def test_a_hostile_or_impossible_rule_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FirewallRule.model_validate({"name": "db", "port": 20001, **fields})


# The agent, with real iptables in a namespace of its own


def iptables_in(namespace: str) -> list[str]:
    return [*netns.in_netns(namespace), "iptables"]


def listing(namespace: str) -> list[str]:
    """Our part of the filter table in `namespace`, as iptables prints it."""
    lines = process.check([*iptables_in(namespace), "-S"]).output.splitlines()
    return [line for line in lines if "DOCKER-USER" in line or "DOCKYARD-SERVICES" in line]


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"dyfw-{os.getpid()}"
    process.check(netns.add_namespace(name))
    try:
        yield name
    finally:
        process.check(netns.delete_namespace(name))


def node_in(namespace: str, state_dir: Path, nginx: Nginx | None = None) -> Node:
    return Node(state_dir=state_dir, certs_dir=state_dir / "certs",
                runtime=DockerRuntime(f"unix://{state_dir}/no-docker.sock"),
                nginx=nginx or Nginx(NginxLayout(state_dir / "nginx")),
                state_file=StateFile(state_dir / "desired-state.json"),
                firewall=Firewall(iptables_in(namespace)))


def agent_of(node: Node, state_dir: Path) -> NodeAgentClient:
    settings = AgentSettings(state_dir=state_dir, docker_host=f"unix://{state_dir}/none.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    transport = httpx.ASGITransport(app=create_app(settings, node))
    return NodeAgentClient("http://agent.test", SECRET, transport=transport)


@pytest.fixture
async def agent(namespace: str, tmp_path: Path) -> AsyncIterator[NodeAgentClient]:
    async with agent_of(node_in(namespace, tmp_path), tmp_path) as client:
        yield client


def db_lines(sources: list[str], name: str = "db", port: int = 20001) -> list[str]:
    match = (f"-p tcp -m conntrack --ctorigdstport {port} --ctdir ORIGINAL "
             f'-m comment --comment "dockyard:{name}"')
    return [*(f"-A DOCKYARD-SERVICES -s {source} {match} -j RETURN" for source in sources),
            f"-A DOCKYARD-SERVICES {match} -j DROP"]


NEW_NOT_DNAT = "-m conntrack --ctstate NEW -m conntrack ! --ctstate DNAT"
CHAINS = ["-N DOCKER-USER", "-N DOCKYARD-SERVICES", "-A DOCKER-USER -j DOCKYARD-SERVICES",
          '-A DOCKYARD-SERVICES -i docker0 -m comment --comment dockyard-node -j RETURN',
          '-A DOCKYARD-SERVICES -i br-+ -m comment --comment dockyard-node -j RETURN',
          f'-A DOCKYARD-SERVICES -o docker0 {NEW_NOT_DNAT} -m comment --comment dockyard-node '
          "-j DROP",
          f'-A DOCKYARD-SERVICES -o br-+ {NEW_NOT_DNAT} -m comment --comment dockyard-node '
          "-j DROP"]


async def test_a_rule_is_applied_once_however_often_it_is_put(
    agent: NodeAgentClient, namespace: str
) -> None:
    await agent.put_firewall_rule(DB)
    await agent.put_firewall_rule(DB)
    assert listing(namespace) == [*CHAINS, *db_lines(["10.0.0.11/32", "10.0.0.13/32"])]
    assert await agent.firewall_rules() == [DB]


async def test_a_rule_is_replaced_and_removed_exactly_leaving_the_others(
    agent: NodeAgentClient, namespace: str
) -> None:
    cache = FirewallRule(name="cache", port=20002, allow=["10.0.0.11"])
    await agent.put_firewall_rule(DB)
    await agent.put_firewall_rule(cache)
    await agent.put_firewall_rule(DB.model_copy(update={"allow": ["10.0.1.0/24"]}))
    assert listing(namespace) == [*CHAINS, *db_lines(["10.0.0.11/32"], "cache", 20002),
                                  *db_lines(["10.0.1.0/24"])]
    await agent.remove_firewall_rule("db")
    await agent.remove_firewall_rule("db")
    assert listing(namespace) == [*CHAINS, *db_lines(["10.0.0.11/32"], "cache", 20002)]
    assert await agent.firewall_rules() == [cache]


async def test_a_disturbed_head_is_put_back_whole_and_first(
    agent: NodeAgentClient, namespace: str
) -> None:
    await agent.put_firewall_rule(DB)
    process.check([*iptables_in(namespace), "-D", "DOCKYARD-SERVICES", "2"])
    process.check([*iptables_in(namespace), "-A", "DOCKYARD-SERVICES", "-i", "br-+", "-m",
                   "comment", "--comment", "dockyard-node", "-j", "RETURN"])
    await agent.put_firewall_rule(DB)
    assert listing(namespace) == [*CHAINS, *db_lines(["10.0.0.11/32", "10.0.0.13/32"])]


async def test_the_rules_come_back_when_the_agent_starts_again(
    agent: NodeAgentClient, namespace: str, tmp_path: Path, nginx: Nginx
) -> None:
    await agent.put_firewall_rule(DB)
    process.check(netns.delete_namespace(namespace))  # a reboot: the kernel's rules are gone
    process.check(netns.add_namespace(namespace))
    assert listing(namespace) == []
    await node_in(namespace, tmp_path, nginx).restore()
    assert listing(namespace) == [*CHAINS, *db_lines(["10.0.0.11/32", "10.0.0.13/32"])]


async def test_a_rule_put_under_another_name_is_refused_with_nothing_applied(
    agent: NodeAgentClient, namespace: str, tmp_path: Path
) -> None:
    body = DB.model_dump_json().encode()
    headers = {**signed_headers(SECRET, "PUT", "/firewall/cache", body),
               "content-type": "application/json"}
    answer = await agent._http.put("/firewall/cache", content=body, headers=headers)
    assert answer.status_code == 422
    assert "the rule is named 'db' but was sent to /firewall/cache" in answer.text
    assert listing(namespace) == []
    assert not (tmp_path / "desired-state.json").exists()


async def test_a_hostile_source_never_reaches_iptables(
    agent: NodeAgentClient, namespace: str
) -> None:
    body = b'{"name": "db", "port": 20001, "allow": ["0.0.0.0/0 -j ACCEPT"]}'
    headers = {**signed_headers(SECRET, "PUT", "/firewall/db", body),
               "content-type": "application/json"}
    answer = await agent._http.put("/firewall/db", content=body, headers=headers)
    assert answer.status_code == 422
    assert "must be an IPv4 address or network" in answer.text
    assert listing(namespace) == []


async def test_iptables_failing_is_a_clear_502_and_nothing_is_kept(tmp_path: Path) -> None:
    node = node_in("dyfw-no-such-namespace", tmp_path)
    async with agent_of(node, tmp_path) as broken:
        with pytest.raises(AgentError) as refused:
            await broken.put_firewall_rule(DB)
        assert refused.value.status_code == 502
        assert "iptables -I DOCKER-USER -j DOCKYARD-SERVICES failed: nsenter" in (
            refused.value.detail)
        assert await broken.firewall_rules() == []
