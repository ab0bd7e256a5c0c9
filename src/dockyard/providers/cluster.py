"""A local multi-host cluster: each node a network namespace with its own dockerd, nginx
and agent, plus one image registry on the bridge that joins them.

Everything `up` creates is recorded in a state file as it is created, so `down` removes
exactly that (even after a failed `up`) and nothing else.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Annotated

import httpx
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dockyard.agent import process
from dockyard.agent.auth import derive_agent_key, write_key_file
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.models.fields import Whole
from dockyard.providers import local, netns

log = logging.getLogger("dockyard.cluster")
RESOLV_CONFS = (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf"))
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCKYARD_CLUSTER_", extra="ignore")

    root: Path = Path("/var/lib/dockyard/cluster")
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("10.231.0.0/24")
    prefix: Annotated[str, Whole(r"[a-z]{1,4}", "use 1-4 lowercase letters")] = "dy"
    registry_port: int = Field(default=5000, ge=1, le=65535)
    agent_port: int = Field(default=8421, ge=1, le=65535)
    nginx_http_port: int = Field(default=80, ge=1, le=65535)


class Running(BaseModel):
    pid: int
    program: str


class NodeRecord(BaseModel):
    name: str
    ip: str
    veth: str
    root: Path
    agent_url: str
    dockerd: Running | None = None
    agent: Running | None = None

    @property
    def docker(self) -> local.DockerdLayout:
        return local.DockerdLayout(self.root / "docker")

    @property
    def agent_dir(self) -> Path:
        return self.root / "agent"


class ClusterState(BaseModel):
    registry_address: str = ""
    bridge: str | None = None
    forward_rule: list[str] | None = None  # written by earlier versions; removed at `down`
    host_rules: list[netns.Rule] = Field(default_factory=list)
    registry: Running | None = None
    namespaces: list[str] = Field(default_factory=list)
    nodes: list[NodeRecord] = Field(default_factory=list)


def registry_config(data_dir: Path, address: str) -> str:
    return (f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {data_dir}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {address}\n")


class Cluster:
    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.root = settings.root
        self.state_file = self.root / "cluster.json"
        self.secret_file = self.root / "agent.secret"
        self.state = self._load()
        self._saving = threading.Lock()
        self._agent_key = b""

    def _load(self) -> ClusterState:
        if self.state_file.exists():
            return ClusterState.model_validate_json(self.state_file.read_text())
        return ClusterState()

    def _save(self) -> None:
        with self._saving:
            self.root.mkdir(parents=True, exist_ok=True)
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(self.state.model_dump_json(indent=2))
            temporary.replace(self.state_file)

    @property
    def bridge_ip(self) -> str:
        return str(self.settings.subnet.network_address + 1)

    def secret(self) -> str:
        """The agent secret of this cluster (a workspace's agent secret stands in for it)."""
        if not self.secret_file.exists():
            write_key_file(self.secret_file, secrets.token_bytes(32))
        return self.secret_file.read_text().strip()

    # Up

    def up(self, nodes: int, agent_key: bytes | None = None) -> ClusterState:
        """Create the hosts; their agents hold `agent_key` (a workspace's install key) or,
        without one, a key derived from this cluster's own secret."""
        self._agent_key = agent_key or derive_agent_key(self.secret())
        if self.state.nodes or self.state.bridge:
            raise RuntimeError(f"a cluster is already up (state in {self.state_file}); "
                               "run `dockyard cluster down` first")
        deepest = self.root / "nodes" / f"node{nodes}" / "docker" / "exec" / "containerd" / "x.sock"
        if len(str(deepest)) > local.MAX_SOCKET_PATH:
            raise ValueError(f"cluster root {self.root} is too deep for unix sockets; "
                             "set DOCKYARD_CLUSTER_ROOT to a shorter directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self._bridge()
        self._registry()
        for index in range(1, nodes + 1):
            self._node(index)
        return self.state

    def _run_all(self, argvs: list[list[str]]) -> None:
        for argv in argvs:
            process.check(argv, timeout=60)

    def _bridge(self) -> None:
        bridge = f"{self.settings.prefix}-br0"
        self.state.bridge = bridge
        self._save()
        self._run_all(netns.bridge_up(bridge, f"{self.bridge_ip}/{self.settings.subnet.prefixlen}"))
        self._add_rule(netns.bridge_forward_rule(bridge))
        self._allow_outbound(bridge)

    def _allow_outbound(self, bridge: str) -> None:
        """Forward and masquerade the subnet out of the machine's default route."""
        uplink = netns.default_interface(Path("/proc/net/route").read_text())
        if uplink is None:
            log.warning("this machine has no default route: the nodes reach only each other")
            return
        if IP_FORWARD.read_text().strip() != "1":
            log.warning("IP forwarding is off (%s): the nodes reach only each other", IP_FORWARD)
        for rule in netns.outbound_rules(bridge, str(self.settings.subnet), uplink):
            self._add_rule(rule)

    def _add_rule(self, rule: netns.Rule) -> None:
        """Recorded first, inserted unless an earlier run left it in place."""
        self.state.host_rules.append(rule)
        self._save()
        if not process.run(rule.argv("-C")).ok:
            process.check(rule.argv("-I"))

    def _registry(self) -> None:
        address = f"{self.bridge_ip}:{self.settings.registry_port}"
        directory = self.root / "registry"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        (directory / "config.yml").write_text(registry_config(directory / "data", address))
        child = process.spawn(["docker-registry", "serve", str(directory / "config.yml")],
                              log_file=directory / "registry.log")
        self.state.registry = Running(pid=child.pid, program="docker-registry")
        self.state.registry_address = address
        self._save()
        local.wait_until(lambda: _answers(f"http://{address}/v2/"), timeout=30,
                         what=f"registry at {address} (see {directory / 'registry.log'})")

    def _node(self, index: int) -> None:
        prefix, subnet = self.settings.prefix, self.settings.subnet
        ip = str(subnet.network_address + 10 + index)
        node = NodeRecord(name=f"{prefix}-node{index}", ip=ip, veth=f"{prefix}v{index}h",
                          root=self.root / "nodes" / f"node{index}",
                          agent_url=f"https://{ip}:{self.settings.agent_port}")
        process.check(netns.add_namespace(node.name))
        self.state.namespaces.append(node.name)
        self.state.nodes.append(node)
        self._save()
        self._run_all(netns.veth_into_namespace(
            node.veth, f"{prefix}v{index}n", node.name, self.state.bridge or "",
            f"{ip}/{subnet.prefixlen}"))
        process.check(netns.default_route(node.name, self.bridge_ip))
        self._start_dockerd(node)
        write_key_file(node.agent_dir / "agent.key", self._agent_key)
        self.start_agent(node)

    def _start_dockerd(self, node: NodeRecord) -> None:
        layout = local.DockerdLayout(node.docker.root, (self.state.registry_address,),
                                     shutdown_timeout=3, dns=tuple(node_resolvers()))
        pid = local.start_dockerd(layout, netns.in_netns(node.name))
        node.dockerd = Running(pid=pid, program="dockerd")
        self._save()

    def launch(self, node: NodeRecord) -> local.AgentLaunch:
        """The node's agent; it keeps its own log and its dockerd's bounded."""
        return local.AgentLaunch(state_dir=node.agent_dir, host=node.ip,
                                 port=self.settings.agent_port, docker_host=node.docker.host,
                                 nginx_http_port=self.settings.nginx_http_port,
                                 other_logs=(node.docker.log_file,))

    def fingerprint(self, node: NodeRecord) -> str:
        """The node agent's certificate fingerprint, read from its state dir on this machine."""
        return self.launch(node).fingerprint()

    def start_agent(self, node: NodeRecord) -> None:
        pid = local.start_agent(self.launch(node), netns.in_netns(node.name))
        node.agent = Running(pid=pid, program="dockyard.agent.main")
        self._save()

    def stop_agent(self, node: NodeRecord) -> None:
        if node.agent is not None:
            netns.stop_process(node.agent.pid, node.agent.program)
            node.agent = None
            self._save()

    def nginx(self, node: NodeRecord) -> Nginx:
        return Nginx(NginxLayout(node.agent_dir / "nginx", self.settings.nginx_http_port))

    def node(self, name: str) -> NodeRecord:
        for node in self.state.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # Down

    def down(self) -> list[str]:
        """Undo everything recorded; returns the problems met (it keeps going past them)."""
        problems: list[str] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            stops = [pool.submit(_attempt, f"stop node {node.name}", partial(self._stop_node, node))
                     for node in self.state.nodes]
            for stop in stops:
                problems += stop.result()
        for name in reversed(self.state.namespaces):
            problems += _attempt(f"delete namespace {name}", partial(_delete_namespace, name))
        for node in self.state.nodes:
            problems += _attempt(f"delete link {node.veth}", partial(_delete_link, node.veth))
        problems += _attempt("stop the registry", self._stop_registry)
        problems += _attempt("remove the bridge", self._remove_bridge)
        problems += _attempt("remove mounts", lambda: _unmount_under(self.root))
        if not problems:
            shutil.rmtree(self.root / "nodes", ignore_errors=True)
            shutil.rmtree(self.root / "registry", ignore_errors=True)
            self.state_file.unlink(missing_ok=True)
            self.state = ClusterState()
        return problems

    def _stop_node(self, node: NodeRecord) -> None:
        self.stop_agent(node)
        for pid in self.nginx(node).running_pids():  # the edge and the switch
            netns.stop_process(pid, "nginx")
        if node.dockerd is not None:
            netns.stop_process(node.dockerd.pid, node.dockerd.program, grace=60)
            node.dockerd = None
            self._save()

    def _stop_registry(self) -> None:
        if self.state.registry is not None:
            netns.stop_process(self.state.registry.pid, self.state.registry.program)
            self.state.registry = None
            self._save()

    def _remove_bridge(self) -> None:
        if self.state.forward_rule is not None:
            process.run(["iptables", "-D", *self.state.forward_rule])
            self.state.forward_rule = None
        while self.state.host_rules:
            process.run(self.state.host_rules[-1].argv("-D"))
            self.state.host_rules.pop()
        if self.state.bridge is not None:
            _delete_link(self.state.bridge)
            self.state.bridge = None
        self._save()

    # Status

    def status(self) -> list[dict[str, str]]:
        rows = [{"name": "registry", "address": self.state.registry_address,
                 "state": _up(_answers(f"http://{self.state.registry_address}/v2/"))}]
        for node in self.state.nodes:
            rows.append({"name": node.name, "address": node.agent_url,
                         "state": _up(local.agent_answers(node.agent_url)),
                         "docker": _up(local.docker_responds(node.docker.host))})
        return rows


def node_resolvers() -> list[str]:
    """The machine's resolvers a node can reach: /etc/resolv.conf's, or systemd-resolved's
    upstream ones when /etc/resolv.conf names only its local stub."""
    for path in RESOLV_CONFS:
        found = netns.nameservers(path.read_text()) if path.is_file() else []
        if found:
            return found
    return []


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def _up(flag: bool) -> str:
    return "up" if flag else "down"


def _attempt(what: str, action: Callable[[], None]) -> list[str]:
    try:
        action()
    except (OSError, RuntimeError, process.CommandFailed) as exc:
        log.error("could not %s: %s", what, exc)
        return [f"could not {what}: {exc}"]
    return []


def _delete_namespace(name: str) -> None:
    if netns.namespace_exists(name):
        process.check(netns.delete_namespace(name))


def _delete_link(name: str) -> None:
    if netns.link_exists(name):
        process.check(netns.delete_link(name))


def _unmount_under(root: Path) -> None:
    for point in netns.mounts_under(root, Path("/proc/self/mountinfo").read_text()):
        process.check(netns.unmount(point))
