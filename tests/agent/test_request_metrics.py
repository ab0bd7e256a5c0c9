"""App request metrics on the agent: parsing and counting as data, the tail over a real file
(truncated, rotated), the collector and its endpoint in the real agent app."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import AgentError, NodeAgentClient
from dockyard.agent.logrotate import Bound
from dockyard.agent.logtail import GRACE_READS, LogTail, Position
from dockyard.agent.models import (
    ContainerSpec,
    ContainerSummary,
    ImageRef,
    PortBinding,
    PublishedPort,
    Site,
    Upstream,
)
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx, NginxInstance
from dockyard.agent.request_metrics import (
    Aggregator,
    BucketBuffer,
    LoggedRequest,
    RequestCollector,
    answering_port,
    parse_line,
    releases_by_port,
)
from dockyard.agent.settings import AgentSettings
from dockyard.deploy.plan import DEPLOYMENT_LABEL
from dockyard.models.app_metrics import HISTOGRAM_SIZE, RequestBucket
from tests.agent.conftest import SECRET, eventually_true, free_port, stop_and_wait

T0 = 1_700_000_000.0  # a bucket boundary


def line(at: float = T0 + 1.5, service: str = "web", upstream: str = "127.0.0.1:18000",
         status: int = 200, seconds: float = 0.004, host: str = "shop.test") -> bytes:
    return json.dumps({"msec": at, "host": host, "service": service, "upstream": upstream,
                       "status": str(status), "request_time": seconds,
                       "bytes_sent": 100}).encode()


def latency(**at_index: int) -> list[int]:
    found = [0] * HISTOGRAM_SIZE
    for index, count in at_index.items():
        found[int(index[1:])] = count
    return found


def test_a_line_parses_into_a_request() -> None:
    assert parse_line(line()) == LoggedRequest(at=T0 + 1.5, host="shop.test", service="web",
                                               upstream="127.0.0.1:18000", status=200,
                                               seconds=0.004, bytes_sent=100)


@pytest.mark.parametrize("raw", [b"", b"not json", b"{}", b'{"msec":"x"}', b"[1]",
                                 line().replace(b'"200"', b'"oops"')])
def test_what_is_not_a_request_line_is_refused(raw: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        parse_line(raw)


@pytest.mark.parametrize(("upstream", "port"), [
    ("127.0.0.1:18000", 18000), ("127.0.0.1:18000, 127.0.0.1:18001", 18001),
    ("127.0.0.1:18000 : 127.0.0.1:18002", 18002), ("[::1]:18003", 18003), ("", None),
    ("unix:/run/x.sock", None)])
def test_the_last_address_tried_is_the_one_that_answered(upstream: str, port: int | None
                                                         ) -> None:
    assert answering_port(upstream) == port


def test_releases_by_the_host_ports_their_containers_publish() -> None:
    def container(name: str, deployment: str, port: int) -> ContainerSummary:
        return ContainerSummary(id=name, name=name, image="i", state="running", status="",
                                labels={"dockyard.deployment": deployment},
                                ports=[PublishedPort(container_port=8000, host_port=port,
                                                     host_ip="127.0.0.1")])
    found = releases_by_port([container("a", "0123456789abcdef", 18000),
                              container("b", "fedcba9876543210", 18001)])
    assert found == {18000: "01234567", 18001: "fedcba98"}


def test_requests_are_counted_per_service_release_and_ten_seconds() -> None:
    counted = Aggregator()
    for raw, release in [(line(), "r1"), (line(status=500, seconds=0.3), "r1"),
                         (line(status=404, seconds=40), "r1"), (line(status=301), "r2"),
                         (line(at=T0 + 10), "r1"), (line(service="api", status=101), "")]:
        request = parse_line(raw)
        counted.add(request, request.service, release)
    assert counted.close(T0 + 12.9) == []
    assert counted.close(T0 + 13) == [
        RequestBucket(service="api", release="", start=int(T0), requests=1, status_2xx=1,
                      bytes_sent=100, latency=latency(i2=1)),
        RequestBucket(service="web", release="r1", start=int(T0), requests=3, status_2xx=1,
                      status_4xx=1, status_5xx=1, bytes_sent=300,
                      latency=latency(i2=1, i11=1, i21=1)),
        RequestBucket(service="web", release="r2", start=int(T0), requests=1, status_3xx=1,
                      bytes_sent=100, latency=latency(i2=1))]
    assert [b.start for b in counted.close(T0 + 23)] == [int(T0) + 10]
    assert counted.open == {}


def bucket(start: int) -> RequestBucket:
    return RequestBucket(service="web", release="", start=start, requests=1,
                         latency=latency(i0=1))


def test_the_buffer_pages_after_a_cursor_and_drops_the_oldest_past_its_bound() -> None:
    buffer = BucketBuffer(size=3, first=100)
    assert buffer.page(0).model_dump() == {"cursor": 0, "buckets": [], "lost": 0}
    buffer.extend([bucket(10), bucket(20)])
    first = buffer.page(0, limit=1)
    assert (first.cursor, [b.start for b in first.buckets]) == (101, [10])
    assert [b.start for b in buffer.page(first.cursor).buckets] == [20]
    assert buffer.page(102).model_dump() == {"cursor": 102, "buckets": [], "lost": 0}
    buffer.extend([bucket(30), bucket(40), bucket(50)])
    late = buffer.page(101)
    assert ([b.start for b in late.buckets], late.cursor, late.lost) == ([30, 40, 50], 105, 2)
    assert [b.start for b in buffer.page(999).buckets] == [30, 40, 50]  # the clock went back


def test_the_tail_reads_whole_lines_through_truncation_and_replacement(tmp_path: Path
                                                                       ) -> None:
    path = tmp_path / "requests.log"
    tail = LogTail(path)
    assert tail.read() == []  # no file yet
    path.write_bytes(b"one\ntw")
    assert tail.read() == [b"one"]
    with path.open("ab") as log:
        log.write(b"o\nthree\n")
    assert tail.read() == [b"two", b"three"]
    path.write_bytes(b"four\n")  # truncated, then written again
    assert tail.read() == [b"four"]
    with path.open("ab") as writer:  # a writer holding the file while it is renamed away
        path.rename(tmp_path / "requests.log.1")
        path.write_bytes(b"new\n")
        writer.write(b"late\n")
        writer.flush()
        assert tail.read() == [b"late"]
        assert [tail.read() for _ in range(GRACE_READS)] == [[]] * GRACE_READS
    assert tail.read() == [b"new"]
    assert tail.position == Position(path.stat().st_ino, 4)


def test_the_tail_goes_on_from_a_kept_position_of_the_same_file_only(tmp_path: Path) -> None:
    path = tmp_path / "requests.log"
    path.write_bytes(b"one\ntwo\n")
    assert LogTail(path, Position(path.stat().st_ino, 4)).read() == [b"two"]
    assert LogTail(path, Position(path.stat().st_ino + 1, 4)).read() == [b"one", b"two"]


async def no_containers() -> list[ContainerSummary]:
    return []


def collector_on(directory: Path, rotate_bytes: int = 10_000) -> RequestCollector:
    edge = NginxInstance(NginxLayout(directory / "nginx"))
    edge.layout.requests_log.parent.mkdir(parents=True)
    return RequestCollector(edge, list, no_containers, directory / "requests.position",
                            Bound(rotate_bytes, files=1, max_age_seconds=3600))


async def test_the_collector_counts_skips_what_it_cannot_read_and_keeps_the_log_short(
        tmp_path: Path) -> None:
    collector = collector_on(tmp_path, rotate_bytes=1000)
    log = collector.path
    lines = [line(at=T0 + i / 100) for i in range(10)] + [b"garbage", line(service="", host="x")]
    log.write_bytes(b"\n".join(lines) + b"\n")
    await collector.step(T0 + 13)
    page = collector.page(0)
    assert [(b.service, b.release, b.requests) for b in page.buckets] == [("web", "", 10)]
    assert (collector.malformed, collector.unattributed) == (1, 1)
    assert not log.exists()  # rotated
    assert log.with_name("requests.log.1").exists()
    log.write_bytes(line(at=T0 + 20) + b"\n")  # nginx reopened it
    for _ in range(GRACE_READS + 1):
        await collector.step(T0 + 33)
    assert [b.start for b in collector.page(page.cursor).buckets] == [int(T0) + 20]
    kept = json.loads((tmp_path / "requests.position").read_text())
    assert kept == {"inode": log.stat().st_ino, "offset": log.stat().st_size}


async def test_the_endpoint_pages_the_buckets_of_the_real_agent_app(
        agent: NodeAgentClient, agent_transport: httpx.ASGITransport) -> None:
    collector: RequestCollector = agent_transport.app.state.request_metrics  # type: ignore[attr-defined]
    collector.path.parent.mkdir(parents=True, exist_ok=True)
    collector.path.write_bytes(b"\n".join([line(), line(status=503), line(at=T0 + 11)]) + b"\n")
    await collector.step(T0 + 30)
    page = await agent.request_metrics(after=0)
    assert [(b.start, b.requests, b.status_5xx) for b in page.buckets] == [
        (int(T0), 2, 1), (int(T0) + 10, 1, 0)]
    assert (await agent.request_metrics(after=page.cursor)).buckets == []


async def test_the_endpoint_is_signed_and_checks_its_cursor(
        agent_transport: httpx.ASGITransport) -> None:
    async with httpx.AsyncClient(transport=agent_transport, base_url="http://a.test") as raw:
        assert (await raw.get("/metrics/requests")).status_code == 401
        assert (await raw.get("/host")).status_code == 401
    async with NodeAgentClient("http://a.test", "workspace-agent-secret",
                               transport=agent_transport) as client:
        with pytest.raises(AgentError) as refused:
            await client.request_metrics(after=-1)
    assert refused.value.status_code == 422



# Through real nginx: the agent app with its lifespan (nginx started, the collector running),
# the machine's Docker running a stdlib HTTP server as a release's container.

SERVICE = "reqmetrics-test"
DEPLOYMENT = "0123456789abcdef0123456789abcdef"
BACKEND = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(500 if self.path == "/fail" else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


@dataclass
class ServingAgent:
    client: NodeAgentClient
    edge: str


@pytest.fixture
async def serving_agent(nginx_root: Path, docker_host: str) -> AsyncIterator[ServingAgent]:
    """A real agent app, lifespan and all, on a short state directory and free ports."""
    settings = AgentSettings(state_dir=nginx_root.parent, docker_host=docker_host,
                             nginx_http_port=free_port(), nginx_https_port=free_port())
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app), NodeAgentClient(
                "http://agent.test", SECRET, transport=httpx.ASGITransport(app=app)) as agent:
            yield ServingAgent(agent, f"http://127.0.0.1:{settings.nginx_http_port}")
    finally:
        with docker.APIClient(base_url=docker_host) as api:
            label = f"dockyard.service={SERVICE}"
            for found in api.containers(all=True, filters={"label": label}):
                api.remove_container(found["Id"], force=True)
        pair = Nginx(NginxLayout(settings.nginx_dir, settings.nginx_http_port,
                                 settings.nginx_https_port))
        stop_and_wait(pair)
        shutil.rmtree(pair.layout.runtime, ignore_errors=True)


async def buckets_until(agent: NodeAgentClient, requests: int) -> list[RequestBucket]:
    """Pages of closed buckets until they hold `requests` requests (a bucket closes some
    13 s after it began)."""
    found: list[RequestBucket] = []
    cursor = 0
    for _ in range(120):
        page = await agent.request_metrics(after=cursor)
        found, cursor = found + page.buckets, page.cursor
        if sum(b.requests for b in found) >= requests:
            return found
        await asyncio.sleep(0.5)
    pytest.fail(f"{requests} requests never showed in closed buckets: {found}")


async def until_served(port: int) -> None:
    """The container's server answers (nginx would answer 502 before, and count it)."""
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            with suppress(httpx.TransportError):
                if (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    pytest.fail("the backend container never answered")


async def test_requests_through_real_nginx_are_counted_per_release(
        serving_agent: ServingAgent, python_image: ImageRef) -> None:
    agent = serving_agent.client
    spec = ContainerSpec(name=f"{SERVICE}-web-1", service=SERVICE, image=python_image,
                         command=["python3", "-c", BACKEND], labels={DEPLOYMENT_LABEL: DEPLOYMENT},
                         ports=[PortBinding(container_port=8000, host_port=0)])
    port = (await agent.run_container(spec)).ports[0].host_port
    await until_served(port)
    await agent.apply_site(Site(service=SERVICE, server_names=["shop.test"],
                                upstreams=[Upstream(host="127.0.0.1", port=port)]))
    async with httpx.AsyncClient(base_url=serving_agent.edge) as client:
        statuses = [(await client.get(path, headers={"Host": "shop.test"})).status_code
                    for path in ["/"] * 12 + ["/fail"] * 5]
        unknown = await client.get("/", headers={"Host": "nobody.test"})
    assert (statuses.count(200), statuses.count(500), unknown.status_code) == (12, 5, 404)
    buckets = await buckets_until(agent, 17)
    assert {(b.service, b.release) for b in buckets} == {(SERVICE, DEPLOYMENT[:8])}
    assert (sum(b.requests for b in buckets), sum(b.status_5xx for b in buckets)) == (17, 5)


async def counted_until(collector: RequestCollector, wanted: int) -> None:
    for _ in range(200):
        await collector.step(T0)  # closes nothing: only reads, counts and rotates
        if sum(c.requests for c in collector.aggregator.open.values()) >= wanted:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{wanted} requests never showed in the log")


async def test_a_rotated_log_loses_no_request_of_a_real_edge(
        nginx: Nginx, backend_port: int, tmp_path: Path) -> None:
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=backend_port)])
    nginx.apply(site, [site])
    collector = RequestCollector(nginx.edge, lambda: [site], no_containers,
                                 tmp_path / "requests.position", Bound(500, 1, 3600))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{nginx.layout.http_port}",
                                 headers={"Host": "shop.test"}) as client:
        for wanted in (5, 10):
            for _ in range(5):
                assert (await client.get("/")).status_code == 200
            await counted_until(collector, wanted)
            assert collector.path.with_name("requests.log.1").exists()  # rotated each time
            eventually_true(collector.path.exists, "nginx opening a new log")
    assert sum(b.requests for b in collector.aggregator.close(math.inf)) == 10


async def test_a_5xx_of_nginx_itself_counts_for_the_service_without_a_release(
        nginx: Nginx, tmp_path: Path) -> None:
    """No container answers (the switch's 502), then the switch is down (the edge's 502,
    attributed by the name's route)."""
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=free_port())])
    nginx.apply(site, [site])
    collector = RequestCollector(nginx.edge, lambda: [site], no_containers,
                                 tmp_path / "requests.position")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{nginx.layout.http_port}",
                                 headers={"Host": "shop.test"}) as client:
        assert (await client.get("/")).status_code == 502
        await counted_until(collector, 1)
        nginx.switch.stop()
        eventually_true(lambda: nginx.switch.running_pid() is None, "the switch stopping")
        assert (await client.get("/")).status_code == 502
        await counted_until(collector, 2)
    [bucket] = collector.aggregator.close(math.inf)
    assert (bucket.service, bucket.release, bucket.requests, bucket.status_5xx) == (
        "web", "", 2, 2)
