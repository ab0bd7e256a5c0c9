"""Traffic that survives losing a server: the watch marks a server's copy of a service down
when its agent stops answering or its site fails through the node's edge (after two failed
checks, not one), up again at the first good check, with a server event each time and DNS
called only on a change; servers are drained and undrained by admins.

Real agents (`dockyard-agent` processes with their nginx) serve a site whose upstream is a
stand-in for the service's container: a small HTTP server on this machine."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import Site, Upstream
from dockyard.core import agents, servers, traffic
from dockyard.core.credentials import set_credential
from dockyard.core.platform import Platform
from dockyard.models.enums import Role
from dockyard.models.schemas import CredentialSet
from dockyard.models.tables import Domain, Placement, Service
from dockyard.providers.cloudflare import MARKER
from tests.agent.conftest import AGENT_PROGRAM, AgentProcess, eventually_true
from tests.api.test_servers import SERVERS, StartAgent, _agent_key, start_agent
from tests.fakes.cloudflare import TOKEN, FakeCloudflare, serve_checked
from tests.pg import free_port
from tests.real_agent import SQLITE_ONLY

__all__ = ["start_agent"]  # the fixture, used here by name
SITE = "shop-web"  # the node-side name of shop/web


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class StandIn:
    """The service's container: an HTTP server on a fixed port, stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Hello)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    container = StandIn()
    container.start()
    yield container
    container.stop()


@dataclass
class Node:
    """A server of the inventory whose agent serves shop/web's site."""

    agent: AgentProcess
    server_id: str
    placement_id: str


class DnsCalls:
    """The `on_change` seam: counts how often DNS would be brought in line."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


async def node_serving_shop(client: Any, shop: Any, platform: Platform,
                            start_agent: StartAgent, stand_in: StandIn, name: str,
                            ip: str = "127.0.0.1") -> Node:
    """Adopt a real agent at `ip` as `name`, give it shop/web's site (upstream: the
    stand-in) and place shop/web on it."""
    agent = start_agent(await _agent_key(client, shop), host=ip)
    body = {"name": name, "ip": ip, "agent_port": agent.port}
    added = await client.post(SERVERS, json=body, headers=shop.headers)
    assert added.status_code == 201, added.text
    server = added.json()
    secret = await agents.secret_for(platform, shop.workspace_id)
    site = Site(service=SITE, server_names=["web.shop.apps.test"],
                upstreams=[Upstream(host="127.0.0.1", port=stand_in.port)])
    async with NodeAgentClient(agent.url, secret, fingerprint=server["agent_fingerprint"]
                               ) as node:
        await node.apply_site(site)
    return Node(agent, server["id"], await place(platform, shop.workspace_id, server["id"]))


async def place(platform: Platform, workspace_id: str, server_id: str) -> str:
    """What a deploy of shop/web to the server records (no Docker here to deploy with)."""
    async def tx(s: Any) -> str:
        service = await s.scalar(select(Service).where(Service.name == "web"))
        placement = Placement(workspace_id=workspace_id, service_id=service.id,
                              server_id=server_id)
        s.add(placement)
        await s.flush()
        return str(placement.id)

    return await platform.db.write(tx)


async def traffic_of(platform: Platform, placement_id: str) -> tuple[str, str]:
    async def tx(s: Any) -> tuple[str, str]:
        placement = await s.get(Placement, placement_id)
        return placement.traffic, placement.traffic_reason

    return await platform.db.read(tx)


def restart(agent: AgentProcess) -> AgentProcess:
    """The same agent started again (its state, port and certificate), as a service manager
    would; it brings its nginx back from its desired state."""
    layout = agent.proxy.layout
    env = {"DOCKYARD_AGENT_HOST": agent.host, "DOCKYARD_AGENT_PORT": str(agent.port),
           "DOCKYARD_AGENT_STATE_DIR": str(agent.state_dir), "DOCKYARD_AGENT_TLS": "true",
           "DOCKYARD_AGENT_DOCKER_HOST": f"unix://{agent.state_dir}/no-docker.sock",
           "DOCKYARD_AGENT_NGINX_HTTP_PORT": str(layout.http_port),
           "DOCKYARD_AGENT_NGINX_HTTPS_PORT": str(layout.https_port),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    log = (agent.state_dir / "agent.log").open("ab")
    agent.child = subprocess.Popen([AGENT_PROGRAM], env=env, stdout=log, stderr=log)
    return agent


async def until_flipped(watch: traffic.TrafficWatch, within: int = 10
                        ) -> list[traffic.Flip]:
    """Check until a pass flips something (the agent may take a moment to come back)."""
    for _ in range(within):
        if flips := await watch.check_once():
            return flips
        await asyncio.sleep(0.5)
    pytest.fail(f"no copy flipped in {within} checks")


async def messages(client: Any, account: Any, server_id: str) -> list[str]:
    answer = await client.get(f"{SERVERS}/{server_id}/events", headers=account.headers)
    assert answer.status_code == 200, answer.text
    return [e["message"] for e in answer.json() if e["kind"] == "traffic"]


async def listed(client: Any, account: Any) -> dict[str, Any]:
    answer = await client.get(SERVERS, headers=account.headers)
    assert answer.status_code == 200, answer.text
    return {s["name"]: s for s in answer.json()}


async def test_a_stopped_agent_takes_its_copy_down_after_two_checks_and_back_up(
    client, shop, platform, start_agent, stand_in
):
    node = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-1")
    dns = DnsCalls()
    watch = traffic.TrafficWatch(platform, dns)
    assert await watch.check_once() == []
    node.agent.stop()
    assert await watch.check_once() == []  # one failed check is a blip
    [flip] = await watch.check_once()
    assert flip.message == "shop/web down on node-1: agent unreachable (connection refused)"
    assert await traffic_of(platform, node.placement_id) == (
        "down", "agent unreachable (connection refused)")
    assert dns.count == 1
    assert await watch.check_once() == []  # still down: no new event, no DNS call
    assert dns.count == 1
    restart(node.agent)
    [flip] = await until_flipped(watch)
    assert flip.message == "shop/web up again on node-1"
    assert await traffic_of(platform, node.placement_id) == ("up", "")
    assert dns.count == 2
    assert await messages(client, shop, node.server_id) == [
        "shop/web down on node-1: agent unreachable (connection refused)",
        "shop/web up again on node-1"]


async def test_a_copy_whose_container_is_gone_fails_through_the_edge_and_is_listed_down(
    client, shop, platform, start_agent, stand_in
):
    node = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-1")
    watch = traffic.TrafficWatch(platform)
    stand_in.stop()
    assert await watch.check_once() == []
    [flip] = await watch.check_once()
    assert (flip.traffic, flip.reason) == ("down", f"site {SITE}: HTTP 502")
    [down] = (await listed(client, shop))["node-1"]["down_copies"]
    assert (down["service"], down["reason"]) == ("shop/web", f"site {SITE}: HTTP 502")
    for answer in (await client.get(f"{SERVERS}/{node.server_id}", headers=shop.headers),
                   await client.post(f"{SERVERS}/{node.server_id}/check", headers=shop.headers)):
        assert answer.json()["down_copies"] == [down], answer.text
    stand_in.start()
    [flip] = await watch.check_once()  # the first good check brings it back
    assert flip.traffic == "up"
    assert (await listed(client, shop))["node-1"]["down_copies"] == []
    assert await messages(client, shop, node.server_id) == [
        f"shop/web down on node-1: site {SITE}: HTTP 502", "shop/web up again on node-1"]


async def test_a_missing_site_is_down_and_other_servers_are_left_alone(
    client, shop, platform, start_agent, stand_in
):
    lost = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-1")
    kept = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-2")
    secret = await agents.secret_for(platform, shop.workspace_id)
    fingerprint = (await listed(client, shop))["node-1"]["agent_fingerprint"]
    async with NodeAgentClient(lost.agent.url, secret, fingerprint=fingerprint) as node:
        await node.remove_site(SITE)
    watch = traffic.TrafficWatch(platform)
    await watch.check_once()
    [flip] = await watch.check_once()
    assert (flip.server, flip.reason) == ("node-1", f"its site {SITE} is missing on the node")
    assert await traffic_of(platform, kept.placement_id) == ("up", "")


async def test_a_second_replica_flips_nothing_twice(
    client, shop, platform, settings, start_agent, stand_in
):
    node = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-1")
    other = Platform.open(settings)  # another API process on the same database
    try:
        watches = [traffic.TrafficWatch(platform), traffic.TrafficWatch(other)]
        node.agent.stop()
        for _ in range(2):
            flips = await asyncio.gather(*(w.check_once() for w in watches))
    finally:
        await other.close()
    assert sorted(len(f) for f in flips) == [0, 1]
    assert len(await messages(client, shop, node.server_id)) == 1


def stop_agent(agent: AgentProcess, how: str) -> Callable[[], None]:
    """Stop the agent (connections refused) or freeze it (SIGSTOP: connections accepted,
    never answered); what undoes a freeze."""
    if how == "stopped":
        agent.stop()
        return lambda: None
    os.kill(agent.child.pid, signal.SIGSTOP)
    return lambda: os.kill(agent.child.pid, signal.SIGCONT)


async def until_marked_down(platform: Platform, node: Node, how: str, interval: float
                            ) -> float:
    """Run the watch as the API does (a pass every `interval` s); right after a pass has seen
    the copy, stop or freeze its agent: the seconds until the copy is recorded down."""
    watch = traffic.TrafficWatch(platform)
    task, undo = asyncio.create_task(watch.run_forever(interval)), (lambda: None)
    try:
        await asyncio.to_thread(eventually_true, lambda: node.placement_id in watch.failures,
                                "the watch's first pass")
        stopped = time.monotonic()  # counted from before the stop: an upper bound
        undo = stop_agent(node.agent, how)
        while (await traffic_of(platform, node.placement_id))[0] != "down":
            assert time.monotonic() - stopped < 60, "not marked down within 60 s"
            await asyncio.sleep(0.1)
        return time.monotonic() - stopped
    finally:
        task.cancel()
        undo()


@SQLITE_ONLY
@pytest.mark.parametrize(("how", "reason"), [
    ("stopped", "agent unreachable (connection refused)"),
    ("frozen", f"agent unreachable (no answer within {traffic.CHECK_TIMEOUT:.0f} s)")])
async def test_an_agent_that_stops_answering_is_marked_down_by_the_running_watch(
    client, shop, platform, start_agent, stand_in, how, reason
):
    """At the least interval allowed (1 s); how long it takes at the default 10 s is what
    bench/traffic_watch_bench.py prints."""
    node = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-1")
    await until_marked_down(platform, node, how, 1)
    assert await traffic_of(platform, node.placement_id) == ("down", reason)


async def test_admins_drain_and_undrain_a_server_with_an_event_and_dns_once(
    client, shop, platform, start_agent
):
    agent = start_agent(await _agent_key(client, shop))
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": agent.port}
    server_id = (await client.post(SERVERS, json=body, headers=shop.headers)).json()["id"]
    dns = DnsCalls()
    admin = shop.actor(Role.OWNER)
    drained = await servers.drain_server(platform, admin, server_id, dns)
    assert (drained.drained, dns.count) == (True, 1)
    again = await servers.drain_server(platform, admin, server_id, dns)
    assert (again.drained_at, dns.count) == (drained.drained_at, 1)  # nothing changed
    assert (await servers.undrain_server(platform, admin, server_id, dns)).drained is False
    assert dns.count == 2
    events = (await client.get(f"{SERVERS}/{server_id}/events", headers=shop.headers)).json()
    assert [e["kind"] for e in events] == ["drained", "undrained"]
    assert "`dockyard servers undrain node-1`" in events[0]["message"]


async def test_drain_routes_answer_the_server_and_are_for_admins(
    client, shop, member_of, start_agent
):
    agent = start_agent(await _agent_key(client, shop))
    body = {"name": "node-1", "ip": "127.0.0.1", "agent_port": agent.port}
    server_id = (await client.post(SERVERS, json=body, headers=shop.headers)).json()["id"]
    for role in (Role.VIEWER, Role.MEMBER):
        account = await member_of(role)
        answer = await client.post(f"{SERVERS}/{server_id}/drain", headers=account.headers)
        assert answer.status_code == 403, answer.text
        assert "may not add or remove servers" in answer.json()["detail"]
    answer = await client.post(f"{SERVERS}/{server_id}/drain", headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["drained"], answer.json()["down_copies"]) == (True, [])
    assert (await listed(client, shop))["node-1"]["drained"] is True
    answer = await client.post(f"{SERVERS}/{server_id}/undrain", headers=shop.headers)
    assert (answer.status_code, answer.json()["drained_at"]) == (200, None)


async def test_draining_an_unknown_server_is_404(client, shop):
    for action in ("drain", "undrain"):
        answer = await client.post(f"{SERVERS}/{'0' * 32}/{action}", headers=shop.headers)
        assert answer.status_code == 404, answer.text
        assert "was not found" in answer.json()["detail"]


@pytest.fixture
def cloudflare(tmp_path) -> Iterator[FakeCloudflare]:
    yield from serve_checked(tmp_path / "cloudflare.json")


async def with_dns(platform: Platform, settings: Any, shop: Any, fake: FakeCloudflare
                   ) -> Platform:
    """shop.example.test for shop/web, its DNS at the fake Cloudflare (credential 'cf'); a
    platform whose settings point at the fake, as an API configured for it would be."""
    await set_credential(platform, shop.actor(Role.OWNER), "cf",
                         CredentialSet(provider="cloudflare", token=TOKEN))

    async def tx(s: Any) -> None:
        service = await s.scalar(select(Service.id).where(Service.name == "web"))
        s.add(Domain(workspace_id=shop.workspace_id, service_id=service, tls="none",
                     hostname="shop.example.test", dns_credential="cf"))

    await platform.db.write(tx)
    return Platform.open(settings.model_copy(update={"cloudflare_api_url": fake.base_url}))


def in_dns(fake: FakeCloudflare) -> list[str]:
    return sorted(r["content"] for r in fake.records("example.test")
                  if r["name"] == "shop.example.test" and r.get("comment") == MARKER)


async def test_dns_follows_the_watch_and_drains(
    client, shop, platform, settings, start_agent, stand_in, cloudflare
):
    """Two servers (127.0.0.1 and ::1): the one whose agent stops leaves DNS, and comes back
    with it; a drained one leaves DNS too."""
    kept = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-1")
    lost = await node_serving_shop(client, shop, platform, start_agent, stand_in, "node-2",
                                   ip="::1")
    configured = await with_dns(platform, settings, shop, cloudflare)
    try:
        watch = traffic.TrafficWatch(configured)  # DNS follows by default
        await traffic.dns_follows(configured)()
        assert in_dns(cloudflare) == ["127.0.0.1", "::1"]
        lost.agent.stop()
        await watch.check_once()
        assert in_dns(cloudflare) == ["127.0.0.1", "::1"]  # one failed check: a blip
        await watch.check_once()
        assert in_dns(cloudflare) == ["127.0.0.1"]
        restart(lost.agent)
        await until_flipped(watch)
        assert in_dns(cloudflare) == ["127.0.0.1", "::1"]
        await servers.drain_server(configured, shop.actor(Role.OWNER), kept.server_id)
        assert in_dns(cloudflare) == ["::1"]
    finally:
        await configured.close()
