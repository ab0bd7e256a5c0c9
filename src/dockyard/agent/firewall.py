"""Who may reach a port this node publishes: iptables argv builders, and the runner of them.

A stateful service publishes its port P on 0.0.0.0. A packet from another host to
NODE_IP:P is DNATed by Docker to the container, then crosses FORWARD and Docker's
`DOCKER-USER` chain, which jumps to our chain `DOCKYARD-SERVICES`. There each rule set (one
per published port, named and tagged `dockyard:NAME` so it is replaced or removed exactly)
lets through the allowed sources and drops everyone else (the chain's head lets the node's
own containers through first).
After DNAT the destination port is the container's, so the rules match the port the client
asked for: conntrack's original destination port.

Connections from the node itself and from its containers to the node's own address never
cross FORWARD with Docker's default userland proxy (Docker does not DNAT what comes from its
own bridges; docker-proxy answers), so they stay open.

The head of the chain, first for every port: what arrives from a local Docker bridge
(`docker0`, and `br-*` for user-defined networks) goes on, so containers still talk to each
other (and, with `userland-proxy: false`, to the node's address); and a new connection into
a bridge that Docker did not DNAT is dropped: Docker accepts forwarded packets to a
published container port whatever their destination, so a neighbour routing the
containers' subnet to the node would otherwise reach CONTAINER_IP:PORT past every rule.
Local traffic is recognised by interface, not by source address: that covers every Docker
network whatever its subnet and networks made later, and an outside host can forge a
source address, not the interface a packet enters by.

A node on a cloud (a provisioned server) also refuses what its containers send to the
cloud's metadata service (agent/metadata_block.py): rules in DOCKER-USER itself.

Rules live in the kernel: a dockerd restart keeps DOCKER-USER and our chain, a reboot loses
them and the agent applies them again at start.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from dockyard.agent import process
from dockyard.agent.models import FirewallRule
from dockyard.kernel.errors import DockyardError

CHAIN = "DOCKYARD-SERVICES"
DOCKER_USER = "DOCKER-USER"
LOCAL_BRIDGES = ("docker0", "br-+")
HEAD_TAG = "dockyard-node"  # no rule set's tag: those are dockyard:NAME
Argv = list[str]


class FirewallError(DockyardError):
    """iptables refused or failed on this node."""

    status_code = 502


def tag(name: str) -> str:
    return f"dockyard:{name}"


def create_chain(chain: str) -> Argv:
    """Fails harmlessly when the chain exists."""
    return ["-N", chain]


def jump(action: str) -> Argv:
    """`action` -C (is it there?) or -I (insert it first)."""
    return [action, DOCKER_USER, "-j", CHAIN]


def _match(rule: FirewallRule) -> Argv:
    return ["-p", rule.protocol, "-m", "conntrack", "--ctorigdstport", str(rule.port),
            "--ctdir", "ORIGINAL", "-m", "comment", "--comment", tag(rule.name)]


def rule_specs(rule: FirewallRule) -> list[Argv]:
    """The rule set: through for each allowed source, then a drop."""
    match = _match(rule)
    allowed = [["-s", source, *match, "-j", "RETURN"] for source in dict.fromkeys(rule.allow)]
    return [*allowed, [*match, "-j", "DROP"]]


def head_specs() -> list[Argv]:
    """First in the chain, for every port: what comes from the node's own Docker bridges
    goes on; a new connection into a bridge that Docker did not DNAT (someone routing to
    a container's own address) is dropped."""
    marked = ["-m", "comment", "--comment", HEAD_TAG]
    local = [["-i", bridge, *marked, "-j", "RETURN"] for bridge in LOCAL_BRIDGES]
    direct = [["-o", bridge, "-m", "conntrack", "--ctstate", "NEW", "-m", "conntrack", "!",
               "--ctstate", "DNAT", *marked, "-j", "DROP"] for bridge in LOCAL_BRIDGES]
    return [*local, *direct]


def insert_head() -> list[Argv]:
    return [["-I", CHAIN, str(number), *spec]
            for number, spec in enumerate(head_specs(), start=1)]


def append_rules(rule: FirewallRule) -> list[Argv]:
    return [["-A", CHAIN, *spec] for spec in rule_specs(rule)]


def list_rules() -> Argv:
    return ["-S", CHAIN]


def delete_rule(number: int) -> Argv:
    return ["-D", CHAIN, str(number)]


def _tag_of(line: str) -> str | None:
    words = shlex.split(line)
    if "--comment" not in words[:-1]:
        return None
    return words[words.index("--comment") + 1]


def numbers_tagged(listing: str, marker: str) -> list[int]:
    """The numbers of the rules tagged `marker` in `iptables -S CHAIN` output, highest
    first (deleting in that order leaves the lower numbers valid)."""
    rules = [line for line in listing.splitlines() if line.startswith(f"-A {CHAIN} ")]
    found = [number for number, line in enumerate(rules, start=1) if _tag_of(line) == marker]
    return sorted(found, reverse=True)


def numbers_of(listing: str, name: str) -> list[int]:
    return numbers_tagged(listing, tag(name))


def head_in_place(listing: str) -> bool:
    return numbers_tagged(listing, HEAD_TAG) == list(range(len(head_specs()), 0, -1))


class Firewall:
    """Runs the builders with `iptables` (argv prefix, e.g. inside a network namespace).
    Blocking: call it from a worker thread, one change at a time."""

    def __init__(self, iptables: Sequence[str] = ("iptables",)) -> None:
        self.iptables = [*iptables, "-w"]

    def _run(self, argv: Argv) -> process.Result:
        try:
            return process.run([*self.iptables, *argv], timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"could not run iptables: {exc}") from exc

    def _check(self, argv: Argv) -> process.Result:
        result = self._run(argv)
        if not result.ok:
            raise FirewallError(f"iptables {' '.join(argv)} failed: {result.output.strip()}")
        return result

    def ensure_in_docker_user(self, spec: Argv) -> None:
        """A rule in DOCKER-USER (made here if Docker has not yet), inserted first unless
        it is there already."""
        self._run(create_chain(DOCKER_USER))
        if not self._run(["-C", DOCKER_USER, *spec]).ok:
            self._check(["-I", DOCKER_USER, *spec])

    def ensure_chain(self) -> None:
        """Our chain with its head, jumped to first from DOCKER-USER (made here if Docker
        has not yet)."""
        self._run(create_chain(DOCKER_USER))
        self._run(create_chain(CHAIN))
        if not self._run(jump("-C")).ok:
            self._check(jump("-I"))
        listing = self._check(list_rules()).output
        if not head_in_place(listing):
            for number in numbers_tagged(listing, HEAD_TAG):
                self._check(delete_rule(number))
            for argv in insert_head():
                self._check(argv)

    def apply(self, rule: FirewallRule) -> None:
        """Add the new set, then delete the old one: the port is never open in between."""
        self.ensure_chain()
        old = numbers_of(self._check(list_rules()).output, rule.name)
        for argv in append_rules(rule):
            self._check(argv)
        for number in old:
            self._check(delete_rule(number))

    def remove(self, name: str) -> None:
        self.ensure_chain()
        for number in numbers_of(self._check(list_rules()).output, name):
            self._check(delete_rule(number))
