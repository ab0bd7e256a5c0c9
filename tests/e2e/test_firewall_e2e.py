"""The firewall of a published port, end to end on the namespace cluster: a server on node 2
publishes a port; with a rule allowing nodes 1 and 3, they (their namespaces and their
containers) and node 2's own containers reach it, and a host that is not a server does not.

The outsider is one more network namespace on the cluster's bridge with an address of its
own: another machine on the servers' network, the nearest an attacker gets, and no node (it
runs no agent and no rule names it). Without the rule, or after it is deleted, or after a
reboot lost the kernel's rules until the agent started again, the outsider does connect:
the rule is what keeps it out.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network

import docker
import pytest

from dockyard.agent import process
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ContainerSpec, FirewallRule, ImageRef, OneOffRun, PortBinding
from dockyard.providers import netns
from dockyard.providers.cluster import Cluster, ClusterSettings, NodeRecord
from dockyard.providers.images import Tarball
from tests.agent.conftest import cluster_root, require_the_real_stack, running_cluster

pytestmark = pytest.mark.slow
BASE = ImageRef(repository="dockyard/base", tag="bookworm")
PORT = 21000
OUTSIDER = "dyf-outsider"
OUTSIDER_IP = "10.236.0.50"
CONNECT = ("import sys, urllib.request; "
           "urllib.request.urlopen(f'http://{sys.argv[1]}:{sys.argv[2]}/', timeout=3)")


@dataclass
class Fenced:
    cluster: Cluster
    clients: list[NodeAgentClient]

    @property
    def nodes(self) -> list[NodeRecord]:
        return self.cluster.state.nodes

    @property
    def server(self) -> NodeRecord:
        return self.nodes[1]

    def client(self, node: NodeRecord) -> NodeAgentClient:
        return self.clients[self.nodes.index(node)]

    def rule(self) -> FirewallRule:
        return FirewallRule(name="fw-db", port=PORT, allow=[self.nodes[0].ip, self.nodes[2].ip])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_the_real_stack()
    settings = ClusterSettings(root=cluster_root("dyf"), subnet=IPv4Network("10.236.0.0/24"),
                               prefix="dyf", registry_port=5004)
    with running_cluster(settings, 3) as the_cluster:
        yield the_cluster


@pytest.fixture(scope="module")
def outsider(cluster: Cluster) -> Iterator[str]:
    """A host on the servers' network that is not a server."""
    process.check(netns.add_namespace(OUTSIDER))
    try:
        for argv in netns.veth_into_namespace("dyfxh", "dyfxn", OUTSIDER,
                                              cluster.state.bridge or "", f"{OUTSIDER_IP}/24"):
            process.check(argv)
        yield OUTSIDER
    finally:
        process.check(netns.delete_namespace(OUTSIDER))  # takes its veth pair along


def client_of(cluster: Cluster, node: NodeRecord) -> NodeAgentClient:
    return NodeAgentClient(node.agent_url, cluster.secret(),
                           fingerprint=cluster.fingerprint(node), timeout=300)


@pytest.fixture(scope="module")
async def fenced(cluster: Cluster, outsider: str, base_tarball: Tarball
                 ) -> AsyncIterator[Fenced]:
    """An HTTP server published on node 2's port PORT, and the base image on nodes 1 and 2."""
    clients = [client_of(cluster, node) for node in cluster.state.nodes]
    await asyncio.gather(*(c.import_rootfs(base_tarball.path, BASE) for c in clients[:2]))
    await clients[1].run_container(ContainerSpec(
        name="fw-db-1", service="fw-db", image=BASE,
        command=["python3", "-m", "http.server", "8000"],
        ports=[PortBinding(container_port=8000, host_port=PORT)]))
    yield Fenced(cluster, clients)
    for client in clients:
        await client.aclose()


def from_namespace(namespace: str, address: str, port: int = PORT) -> bool:
    """Whether a program in `namespace` gets an answer from address:port (3 s to connect)."""
    argv = [*netns.in_netns(namespace), sys.executable, "-c", CONNECT, address, str(port)]
    return process.run(argv, timeout=30).ok


async def from_container(client: NodeAgentClient, address: str, port: int = PORT) -> bool:
    run = OneOffRun(service="fw-probe", image=BASE, timeout_seconds=60,
                    command=["python3", "-c", CONNECT, address, str(port)])
    lines = [line async for line in client.run_one_off(run)]
    return lines[-1].get("exit_code") == 0


def from_user_network(node: NodeRecord, address: str) -> bool:
    """From a container on a network of its own on `node` (a `br-*` bridge), as a project's
    app on the server that runs the service would connect."""
    engine = docker.DockerClient(base_url=node.docker.host)
    network = engine.networks.create("fw-net")
    try:
        container = engine.containers.run(BASE.reference, ["python3", "-c", CONNECT, address,
                                                           str(PORT)], network="fw-net",
                                          detach=True)
        status = container.wait(timeout=60)["StatusCode"]
        container.remove(force=True)
        return bool(status == 0)
    finally:
        network.remove()
        engine.close()


async def eventually(namespace: str, address: str, reached: bool, within: float = 60) -> None:
    """Wait until the port is (or is not) reachable from `namespace`: a rule takes effect
    at once, a started container or agent needs a moment."""
    deadline = time.monotonic() + within
    while await asyncio.to_thread(from_namespace, namespace, address) != reached:
        if time.monotonic() > deadline:
            pytest.fail(f"{namespace} {'never' if reached else 'still'} reached "
                        f"{address}:{PORT} within {within:.0f} s")
        await asyncio.sleep(0.2)


async def test_only_the_servers_reach_a_guarded_port(fenced: Fenced, outsider: str) -> None:
    address = fenced.server.ip
    await eventually(outsider, address, reached=True)  # nothing guards it yet
    await fenced.client(fenced.server).put_firewall_rule(fenced.rule())
    assert await fenced.client(fenced.server).firewall_rules() == [fenced.rule()]
    assert not from_namespace(outsider, address)
    for node in (fenced.nodes[0], fenced.nodes[2]):
        assert from_namespace(node.name, address), node.name
    assert await from_container(fenced.clients[0], address)  # a container on node 1
    assert await from_container(fenced.clients[1], address)  # one on the server itself
    assert await asyncio.to_thread(from_user_network, fenced.server, address)
    await fenced.client(fenced.server).remove_firewall_rule("fw-db")
    assert from_namespace(outsider, address)


def flush_our_chain(node: NodeRecord) -> None:
    """What a reboot does to the kernel's rules (the agent's desired state stays on disk)."""
    process.check([*netns.in_netns(node.name), "iptables", "-w", "-F", "DOCKYARD-SERVICES"])


async def test_the_rule_is_applied_again_when_the_agent_starts(
    fenced: Fenced, outsider: str
) -> None:
    server, address = fenced.server, fenced.server.ip
    await fenced.client(server).put_firewall_rule(fenced.rule())
    assert not from_namespace(outsider, address)
    await asyncio.to_thread(fenced.cluster.stop_agent, server)
    await asyncio.to_thread(flush_our_chain, server)
    assert from_namespace(outsider, address)
    await asyncio.to_thread(fenced.cluster.start_agent, server)
    assert not from_namespace(outsider, address)
    assert from_namespace(fenced.nodes[0].name, address)
    async with client_of(fenced.cluster, server) as again:
        await again.remove_firewall_rule("fw-db")
    assert from_namespace(outsider, address)



async def test_the_rule_outlives_a_restart_of_docker(fenced: Fenced, outsider: str) -> None:
    """dockerd rebuilds its own chains when it starts; DOCKER-USER and ours it leaves."""
    server, address = fenced.server, fenced.server.ip
    await fenced.client(server).put_firewall_rule(fenced.rule())
    assert server.dockerd is not None
    await asyncio.to_thread(netns.stop_process, server.dockerd.pid, server.dockerd.program, 60)
    await asyncio.to_thread(fenced.cluster._start_dockerd, server)
    await eventually(fenced.nodes[0].name, address, reached=True)  # its container is back
    assert not from_namespace(outsider, address)
    await fenced.client(server).remove_firewall_rule("fw-db")
    assert from_namespace(outsider, address)


def container_address(node: NodeRecord, name: str) -> str:
    engine = docker.DockerClient(base_url=node.docker.host)
    try:
        return str(engine.containers.get(name).attrs["NetworkSettings"]["IPAddress"])
    finally:
        engine.close()


async def test_no_host_reaches_a_container_by_its_bridge_address(
    fenced: Fenced, outsider: str
) -> None:
    """Docker accepts forwarded packets to a published container port whatever their
    destination: a neighbour routing the container's subnet to the server would reach it
    at CONTAINER_IP:8000, past the published port's rule. The node's rules drop new
    connections into its bridges that Docker did not DNAT; its own containers still talk."""
    server = fenced.server
    inside = await asyncio.to_thread(container_address, server, "fw-db-1")
    route = [*netns.in_netns(outsider), "ip", "route", "replace", "172.16.0.0/12", "via",
             server.ip]
    process.check(route)
    await fenced.client(server).put_firewall_rule(fenced.rule())
    assert not await asyncio.to_thread(from_namespace, outsider, inside, 8000)
    assert await from_container(fenced.client(server), inside, 8000)
    await fenced.client(server).remove_firewall_rule("fw-db")
    assert from_namespace(outsider, server.ip)  # the port's own rule is gone ...
    assert not await asyncio.to_thread(from_namespace, outsider, inside, 8000)  # ... not this
