"""Network namespaces, links and leftover processes/mounts: argv builders and careful undo."""

from __future__ import annotations

import contextlib
import os
import signal
import time
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


def bridge_forward_rule(bridge: str) -> list[str]:
    """Let nodes talk across the bridge even when Docker set the FORWARD policy to DROP."""
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def iptables_insert(rule: list[str]) -> list[str]:
    return ["iptables", "-I", *rule]


def iptables_delete(rule: list[str]) -> list[str]:
    return ["iptables", "-D", *rule]


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
