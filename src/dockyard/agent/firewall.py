"""Who may reach a port this node publishes: iptables argv builders, and the runner of them.

A stateful service publishes its port P on 0.0.0.0. A packet from another host to
NODE_IP:P is DNATed by Docker to the container, then crosses FORWARD and Docker's
`DOCKER-USER` chain, which jumps to our chain `DOCKYARD-SERVICES`. There each rule set (one
per published port, named and tagged `dockyard:NAME` so it is replaced or removed exactly)
lets through the node's own containers and the allowed sources, and drops everyone else.
After DNAT the destination port is the container's, so the rules match the port the client
asked for: conntrack's original destination port.

Connections from the node itself and from its containers to the node's own address never
cross FORWARD with Docker's default userland proxy (Docker does not DNAT what comes from its
own bridges; docker-proxy answers), so they stay open. With `userland-proxy: false` Docker
DNATs them too, so each rule set also lets through what arrives from a local Docker bridge
(`docker0`, and `br-*` for user-defined networks): recognised by interface, not by source
address, which covers every Docker network whatever its subnet (the default pools include
192.168.0.0/16, outside 172.16.0.0/12) and networks made later, and which an outside host
cannot forge as it can a source address. Rules live in the kernel: a dockerd restart keeps
DOCKER-USER and our chain, a reboot loses them and the agent applies them again at start.
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
    """The rule set: through for the local bridges and each allowed source, then a drop."""
    match = _match(rule)
    local = [["-i", bridge, *match, "-j", "RETURN"] for bridge in LOCAL_BRIDGES]
    allowed = [["-s", source, *match, "-j", "RETURN"] for source in dict.fromkeys(rule.allow)]
    return [*local, *allowed, [*match, "-j", "DROP"]]


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


def numbers_of(listing: str, name: str) -> list[int]:
    """The numbers of the rules of set `name` in `iptables -S CHAIN` output, highest first
    (deleting in that order leaves the lower numbers valid)."""
    rules = [line for line in listing.splitlines() if line.startswith(f"-A {CHAIN} ")]
    found = [number for number, line in enumerate(rules, start=1) if _tag_of(line) == tag(name)]
    return sorted(found, reverse=True)


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

    def ensure_chain(self) -> None:
        """Our chain, jumped to first from DOCKER-USER (made here if Docker has not yet)."""
        self._run(create_chain(DOCKER_USER))
        self._run(create_chain(CHAIN))
        if not self._run(jump("-C")).ok:
            self._check(jump("-I"))

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
