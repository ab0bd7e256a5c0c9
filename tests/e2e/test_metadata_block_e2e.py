"""A provisioned server's containers cannot reach the cloud's metadata service, end to end on
a namespace cluster of one node: the "metadata service" is an HTTP server on 169.254.169.254
in a namespace of its own on the servers' network, routed to from the node as a droplet
routes to DigitalOcean's. Before the node's agent starts with DOCKYARD_AGENT_BLOCK_METADATA a
container on its docker0 reads it; after, the container is refused at once and the node
itself still reads it, and the rules are there once however often the agent starts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Network

import docker
import pytest

from dockyard.agent import process
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.providers import local, netns
from dockyard.providers.cluster import Cluster, ClusterSettings, NodeRecord
from dockyard.providers.images import Tarball
from tests.agent.conftest import cluster_root, require_the_real_stack, running_cluster
from tests.agent.test_metadata_block import REJECTED
from tests.e2e.test_firewall_e2e import CONNECT, from_namespace

pytestmark = pytest.mark.slow
BASE = ImageRef(repository="dockyard/base", tag="bookworm")
METADATA = "169.254.169.254"
SERVICE = "dym-meta"
PORT = 80


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    require_the_real_stack()
    settings = ClusterSettings(root=cluster_root("dym"), subnet=IPv4Network("10.237.0.0/24"),
                               prefix="dym", registry_port=5005)
    with running_cluster(settings, 1) as the_cluster:
        yield the_cluster


def node_interface(node: NodeRecord) -> str:
    """The node's end of its veth pair (the cluster names the bridge's end ...h)."""
    return node.veth.removesuffix("h") + "n"


@pytest.fixture(scope="module")
def metadata_service(cluster: Cluster) -> Iterator[NodeRecord]:
    """The service on its own host of the servers' network; the node routes to it."""
    node = cluster.state.nodes[0]
    process.check(netns.add_namespace(SERVICE))
    try:
        for argv in netns.veth_into_namespace("dymxh", "dymxn", SERVICE,
                                              cluster.state.bridge or "", "10.237.0.60/24"):
            process.check(argv)
        process.check([*netns.in_netns(SERVICE), "ip", "addr", "add", f"{METADATA}/32",
                       "dev", "dymxn"])
        process.check([*netns.in_netns(node.name), "ip", "route", "add", f"{METADATA}/32",
                       "dev", node_interface(node)])
        server = subprocess.Popen([*netns.in_netns(SERVICE), sys.executable, "-m",
                                   "http.server", "--bind", METADATA, str(PORT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            local.wait_until(lambda: from_namespace(node.name, METADATA, PORT), timeout=60,
                             what="the metadata service answering the node")
            yield node
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        process.check(netns.delete_namespace(SERVICE))  # takes its veth pair along


@pytest.fixture(scope="module")
async def client(cluster: Cluster, base_tarball: Tarball) -> AsyncIterator[NodeAgentClient]:
    node = cluster.state.nodes[0]
    async with NodeAgentClient(node.agent_url, cluster.secret(),
                               fingerprint=cluster.fingerprint(node), timeout=300) as agent:
        await agent.import_rootfs(base_tarball.path, BASE)
        yield agent


def from_container(node: NodeRecord) -> tuple[int, str]:
    """A container on the node's docker0 asks the metadata service: its exit code and
    output."""
    engine = docker.DockerClient(base_url=node.docker.host)
    try:
        container = engine.containers.run(BASE.reference, ["python3", "-c", CONNECT, METADATA,
                                                           str(PORT)], detach=True)
        status = container.wait(timeout=60)["StatusCode"]
        output = container.logs().decode()
        container.remove(force=True)
        return status, output
    finally:
        engine.close()


def metadata_rules(node: NodeRecord) -> list[str]:
    lines = process.check([*netns.in_netns(node.name), "iptables", "-S"]).output.splitlines()
    return [line for line in lines if "dockyard-metadata" in line]


def restart_agent(cluster: Cluster, node: NodeRecord) -> None:
    cluster.stop_agent(node)
    cluster.start_agent(node)


async def test_containers_are_refused_and_the_node_still_reaches_it(
    cluster: Cluster, metadata_service: NodeRecord, client: NodeAgentClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = metadata_service
    assert (await asyncio.to_thread(from_container, node))[0] == 0  # nothing blocks it yet
    assert metadata_rules(node) == []
    monkeypatch.setenv("DOCKYARD_AGENT_BLOCK_METADATA", "true")  # the agent's environment
    await asyncio.to_thread(restart_agent, cluster, node)
    await asyncio.to_thread(restart_agent, cluster, node)
    assert metadata_rules(node) == REJECTED
    status, output = await asyncio.to_thread(from_container, node)
    assert status != 0
    assert "Connection refused" in output
    assert from_namespace(node.name, METADATA, PORT)
