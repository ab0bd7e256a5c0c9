"""Network namespaces, links and leftover processes/mounts: argv builders and careful undo."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")


def in_netns(namespace: str) -> list[str]:
    """Run a program in `namespace`; unlike `ip netns exec` this does not remount /sys."""
    return ["nsenter", f"--net={NETNS_DIR / namespace}"]


def bridge_up(bridge: str, address: str) -> list[list[str]]:
    return [
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "addr", "add", address, "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ]


@dataclass(frozen=True)
class Rule:
    """One iptables rule the cluster adds to the host (and removes again at `down`)."""

    table: str
    chain: str
    spec: tuple[str, ...]

    def argv(self, action: str) -> list[str]:
        """`action` is -C (check), -I (insert at the top) or -D (delete)."""
        return ["iptables", "-t", self.table, action, self.chain, *self.spec]


def bridge_forward_rule(bridge: str) -> Rule:
    """Let nodes talk across the bridge even when Docker set the FORWARD policy to DROP."""
    return Rule("filter", "FORWARD", ("-i", bridge, "-o", bridge, "-j", "ACCEPT"))


def outbound_rules(bridge: str, subnet: str, uplink: str) -> list[Rule]:
    """Let nodes reach out through the host's `uplink` as a real server would: forward the
    bridge's subnet out and its replies back, and masquerade that subnet (and only it)."""
    return [
        Rule("filter", "FORWARD", ("-i", bridge, "-o", uplink, "-s", subnet, "-j", "ACCEPT")),
        Rule("filter", "FORWARD", ("-i", uplink, "-o", bridge, "-d", subnet, "-m", "conntrack",
                                   "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")),
        Rule("nat", "POSTROUTING", ("-s", subnet, "-o", uplink, "-j", "MASQUERADE")),
    ]


def default_route(namespace: str, gateway: str) -> list[str]:
    return [*in_netns(namespace), "ip", "route", "add", "default", "via", gateway]


def default_interface(route_table: str) -> str | None:
    """The interface of the default route with the lowest metric, from /proc/net/route."""
    defaults = []
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            defaults.append((int(fields[6]), fields[0]))
    return min(defaults)[1] if defaults else None


def nameservers(resolv_conf: str) -> list[str]:
    """The resolv.conf nameservers a node can reach through the host: IPv4, not loopback."""
    found = []
    for line in resolv_conf.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            with contextlib.suppress(ValueError):
                address = ipaddress.ip_address(words[1])
                if address.version == 4 and not address.is_loopback:
                    found.append(str(address))
    return found


def add_namespace(namespace: str) -> list[str]:
    return ["ip", "netns", "add", namespace]


def delete_namespace(namespace: str) -> list[str]:
    return ["ip", "netns", "delete", namespace]


def veth_into_namespace(host_end: str, node_end: str, namespace: str, bridge: str,
                        address: str) -> list[list[str]]:
    """A veth pair: one end on the bridge, the other inside `namespace` with `address`."""
    inside = in_netns(namespace)
    return [
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end],
        ["ip", "link", "set", node_end, "netns", namespace],
        ["ip", "link", "set", host_end, "master", bridge],
        ["ip", "link", "set", host_end, "up"],
        [*inside, "ip", "addr", "add", address, "dev", node_end],
        [*inside, "ip", "link", "set", node_end, "up"],
        [*inside, "ip", "link", "set", "lo", "up"],
    ]


def delete_link(name: str) -> list[str]:
    return ["ip", "link", "delete", name]


def unmount(path: str) -> list[str]:
    return ["umount", "--lazy", path]


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def mounts_under(root: Path, mountinfo: str) -> list[str]:
    """Mount points at or below `root`, deepest first, from /proc/self/mountinfo text."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == str(root) or point.startswith(prefix):
                points.append(point)
    return sorted(set(points), key=lambda p: (p.count("/"), p), reverse=True)


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid: int, program: str) -> bool:
    """True while `pid` runs and still is `program` (a reused pid is not ours)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if _state(pid) in (None, "Z"):
        _reap(pid)
        return False
    words = [part.decode(errors="replace") for part in cmdline[:3]]
    return any(Path(w).name == program or w.startswith(f"{program}:") for w in words)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(pid: int, program: str, grace: float = 30, sig: int = signal.SIGTERM) -> None:
    """Signal one process we started, wait for it to end, and kill it if it will not."""
    if not alive(pid, program):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while alive(pid, program):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)
