"""End to end on a 3-node cluster: real dockerd, nginx and registry in network namespaces.

Build on node 1, push to the registry, run on nodes 2 and 3, reach it through each node's
nginx by server name; restart an agent and its nginx; refuse hostile input.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import docker
import httpx
import pytest
from anyio import to_thread

from dockyard.agent import process
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.models import (
    ContainerSpec,
    HealthCheck,
    ImageRef,
    PortBinding,
    Site,
    Upstream,
    VolumeMount,
)
from dockyard.agent.pinning import pinned_transport
from dockyard.providers import netns
from dockyard.providers.cluster import Cluster, ClusterSettings, NodeRecord
from dockyard.providers.images import Tarball
from tests.agent.conftest import (
    cluster_root,
    require_the_real_stack,
    running_cluster,
    signed_headers,
)

pytestmark = pytest.mark.slow

APP = b"""import http.server, os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from " + os.environ["NODE"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("", 8000), Hello).serve_forever()
"""
DOCKERFILE = b'FROM dockyard/base:bookworm\nCOPY app.py /app.py\nCMD ["python3", "/app.py"]\n'
SERVER_NAME = "app.test"
APP_PORT = 18500


def build_context() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("Dockerfile", DOCKERFILE), ("app.py", APP)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 60
                     ) -> None:
    """Poll `check` until it holds; fail with the last answer or error after `within` s."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            if await check():
                return
            last = "a false answer"
        except (httpx.HTTPError, AgentError) as exc:
            last = exc
        await asyncio.sleep(0.2)
    pytest.fail(f"{what} did not happen within {within:.0f} s (last: {last!r})")


async def get_site(node: NodeRecord, host: str = SERVER_NAME) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"http://{node.ip}/", headers={"Host": host})


def serves_its_name(node: NodeRecord) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await get_site(node)).text == f"hello from {node.name}"

    return check


def app_spec(image: ImageRef, node: NodeRecord, name: str = "web-1") -> ContainerSpec:
    probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000')"
    return ContainerSpec(
        name=name, service="web", image=image, env={"NODE": node.name},
        ports=[PortBinding(container_port=8000, host_port=APP_PORT if name == "web-1" else
                           APP_PORT + 1)],
        health=HealthCheck(command=["python3", "-c", probe], interval_seconds=1, retries=3),
        memory_bytes=128 * 1024 * 1024, cpus=0.5,
    )


SITE = Site(service="web", server_names=[SERVER_NAME],
            upstreams=[Upstream(host="127.0.0.1", port=APP_PORT)])


@dataclass
class Deployed:
    cluster: Cluster
    image: ImageRef
    clients: list[NodeAgentClient]

    @property
    def nodes(self) -> list[NodeRecord]:
        return self.cluster.state.nodes


@pytest.fixture(scope="session")
async def deployed(cluster: Cluster, base_tarball: Tarball) -> AsyncIterator[Deployed]:
    """Base image imported on node 1, app built there and pushed; run behind nginx on 2 and 3."""
    secret = cluster.secret()
    clients = [NodeAgentClient(n.agent_url, secret, fingerprint=cluster.fingerprint(n),
                               timeout=300) for n in cluster.state.nodes]
    builder, *runners = clients
    await builder.import_rootfs(base_tarball.path, ImageRef(repository="dockyard/base",
                                                            tag="bookworm"))
    image = ImageRef(repository=f"{cluster.state.registry_address}/shop/web",
                     tag="deploy_abcdef12")
    output = [line async for line in builder.build(build_context(), image)]
    assert {"stream": f"Successfully tagged {image.reference}\n"} in output
    _ = [line async for line in builder.push(image)]
    for node, runner in zip(cluster.state.nodes[1:], runners, strict=True):
        _ = [line async for line in runner.pull(image)]
        await runner.run_container(app_spec(image, node))
        await runner.apply_site(SITE)
    yield Deployed(cluster, image, clients)
    for client in clients:
        await client.aclose()


async def test_info_reports_the_node(deployed: Deployed) -> None:
    info = await deployed.clients[0].info()
    assert info.docker_version.startswith("20.")
    assert info.cpus >= 1
    assert info.disk_free_bytes > 0


async def test_an_image_built_on_one_node_serves_through_nginx_on_the_others(
    deployed: Deployed,
) -> None:
    for node in deployed.nodes[1:]:
        await eventually(serves_its_name(node), f"the app behind nginx on {node.name}")
    assert (await get_site(deployed.nodes[1], "other.test")).status_code == 404


async def test_health_and_logs_of_a_running_container(deployed: Deployed) -> None:
    runner = deployed.clients[1]

    async def healthy() -> bool:
        return (await runner.health("web-1")).health == "healthy"

    await eventually(healthy, "a healthy container")
    lines = [line async for line in runner.logs("web-1", tail=50)]
    assert any('"GET / HTTP/1.1" 200' in line for line in lines)
    [listed] = await runner.containers("web")
    assert (listed.name, listed.state, listed.labels["dockyard.service"]) == (
        "web-1", "running", "web")


def sites_and_state(node: NodeRecord) -> dict[str, str]:
    files = [*sorted((node.agent_dir / "nginx" / "sites").iterdir()),
             *sorted((node.agent_dir / "nginx" / "switch" / "sites").iterdir()),
             node.agent_dir / "desired-state.json"]
    return {str(path): path.read_text() for path in files}


@pytest.mark.parametrize("names", [
    ["app.test;"], ["app.test{"], ["}app.test"], ["app test"], ["app.test\nreturn 200;"],
])
async def test_hostile_server_names_are_refused_with_nothing_written(
    deployed: Deployed, names: list[str]
) -> None:
    node = deployed.nodes[2]
    before = sites_and_state(node)
    body = json.dumps({**SITE.model_dump(mode="json"), "server_names": names}).encode()
    headers = {**signed_headers(deployed.cluster.secret(), "PUT", "/sites", body),
               "content-type": "application/json"}
    transport = pinned_transport(deployed.cluster.fingerprint(node))
    async with httpx.AsyncClient(transport=transport) as http:
        answer = await http.put(f"{node.agent_url}/sites", content=body, headers=headers)
    assert answer.status_code == 422
    assert sites_and_state(node) == before


async def test_a_site_nginx_rejects_is_rolled_back(deployed: Deployed) -> None:
    node, client = deployed.nodes[2], deployed.clients[2]
    before = sites_and_state(node)
    unresolvable = Upstream(host="no-such-host.invalid", port=80)
    with pytest.raises(AgentError) as refused:
        await client.apply_site(SITE.model_copy(update={"upstreams": [unresolvable]}))
    assert refused.value.status_code == 422
    assert "nginx rejected" in refused.value.detail
    assert sites_and_state(node) == before
    assert await serves_its_name(node)()


async def test_agent_and_nginx_restart_restore_the_site_and_container(deployed: Deployed) -> None:
    cluster, node = deployed.cluster, deployed.nodes[1]
    await eventually(serves_its_name(node), "the app before the restart")
    await to_thread.run_sync(cluster.stop_agent, node)
    nginx_pid = cluster.nginx(node).running_pid()
    assert nginx_pid is not None
    netns.stop_process(nginx_pid, "nginx")
    engine = docker.APIClient(base_url=node.docker.host)
    engine.stop("web-1", timeout=1)
    engine.close()
    with pytest.raises(httpx.ConnectError):
        await get_site(node)
    await to_thread.run_sync(cluster.start_agent, node)
    await eventually(serves_its_name(node), "the app back behind nginx after the agent restarted")


async def test_stop_remove_and_list_by_label(deployed: Deployed) -> None:
    client, node = deployed.clients[2], deployed.nodes[2]
    await client.run_container(app_spec(deployed.image, node, name="web-2"))
    assert sorted(c.name for c in await client.containers("web")) == ["web-1", "web-2"]
    await client.stop_container("web-2", grace_seconds=1)
    assert (await client.health("web-2")).state == "exited"
    await client.remove_container("web-2")
    assert [c.name for c in await client.containers("web")] == ["web-1"]
    with pytest.raises(AgentError) as gone:
        await client.health("web-2")
    assert gone.value.status_code == 404


async def test_prune_keeps_the_newest_deploy_tags(deployed: Deployed) -> None:
    client, image = deployed.clients[0], deployed.image
    older = [image.model_copy(update={"tag": f"deploy_0000000{n}"}) for n in (1, 2, 3)]
    for ref in older:
        await client.tag(image, ref)
    result = await client.prune(keep=2)
    assert result.removed == [older[1].reference, older[0].reference]
    tags = {t for i in await client.images() for t in i.tags}
    assert {image.reference, older[2].reference} <= tags
    assert not {older[0].reference, older[1].reference} & tags


async def test_a_volume_keeps_data_between_containers(deployed: Deployed) -> None:
    client, image = deployed.clients[0], deployed.image
    await client.create_volume("web-data", "web")
    assert await client.volumes("web") == ["web-data"]
    mount = [VolumeMount(volume="web-data", target="/data")]
    write = "open('/data/kept', 'w').write('still here')"
    await client.run_container(ContainerSpec(
        name="writer", service="web", image=image, command=["python3", "-c", write],
        volumes=mount, restart="no"))

    async def exited() -> bool:
        return (await client.health("writer")).state == "exited"

    await eventually(exited, "the writer to finish")
    await client.remove_container("writer")
    read = "print(open('/data/kept').read(), flush=True)"
    await client.run_container(ContainerSpec(
        name="reader", service="web", image=image, command=["python3", "-c", read],
        volumes=mount, restart="no"))

    async def read_back() -> bool:
        return "still here" in [line async for line in client.logs("reader")]

    await eventually(read_back, "the reader to print what the writer kept")
    await client.remove_container("reader")
    await client.remove_volume("web-data")
    assert await client.volumes("web") == []


def host_rules_naming(*words: str) -> list[str]:
    """This machine's iptables rules, in every table, that mention any of `words`."""
    rules = process.check(["iptables-save"]).output.splitlines()
    return [rule for rule in rules if any(word in rule for word in words)]


def test_down_removes_what_up_created_and_nothing_else() -> None:
    """A one-node cluster of its own, next to a namespace it did not create."""
    require_the_real_stack()
    settings = ClusterSettings(root=cluster_root("dyu"), subnet=IPv4Network("10.233.0.0/24"),
                               prefix="dyu")
    process.check(netns.add_namespace("dyu-keep"))
    try:
        with running_cluster(settings, 1) as small:
            node = small.state.nodes[0]
            assert small.state.registry is not None
            assert node.dockerd is not None
            assert node.agent is not None
            started = [(node.dockerd.pid, "dockerd"), (node.agent.pid, "dockyard.agent.main"),
                       (small.state.registry.pid, "docker-registry")]
            assert all(netns.alive(pid, program) for pid, program in started)
            rules = small.state.host_rules
            assert len(rules) == 4  # the bridge, out, replies in, masquerade
            assert all(process.run(rule.argv("-C")).ok for rule in rules)
            assert len(host_rules_naming("dyu-br0", "10.233.0.0/24")) == 4
        assert host_rules_naming("dyu-br0", "10.233.0.0/24") == []
        assert not netns.namespace_exists(node.name)
        assert not netns.link_exists(node.veth)
        assert not netns.link_exists("dyu-br0")
        assert not any(netns.alive(pid, program) for pid, program in started)
        mountinfo = Path("/proc/self/mountinfo").read_text()
        assert netns.mounts_under(settings.root, mountinfo) == []
        assert netns.namespace_exists("dyu-keep")
    finally:
        process.check(netns.delete_namespace("dyu-keep"))
