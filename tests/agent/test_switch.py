"""Two nginx layers on a real nginx pair (no Docker): an upstream change reloads only the
switch, and a strict keep-alive client under load loses no request while upstreams switch."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from dockyard.agent.models import Site, Upstream
from dockyard.agent.nginx import SOCKETS_BASE
from dockyard.agent.node import Node
from dockyard.agent.proxy import Nginx
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.state import StateFile
from dockyard.kernel.errors import InvalidInput
from tests.agent.conftest import stop_and_wait

HOST = "shop.test"
FORWARDED = ["Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"]
CONCURRENCY = 24
SWITCHES = 12
ANSWERS_PER_SWITCH = 200


class Answer(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1; `/headers` echoes the forwarded headers, anything else answers
    the server's fixed text."""

    protocol_version = "HTTP/1.1"
    server: AnswerServer

    def do_GET(self) -> None:
        if self.path == "/headers":
            body = json.dumps({name: self.headers[name] for name in FORWARDED}).encode()
        else:
            body = self.server.answer
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class AnswerServer(ThreadingHTTPServer):
    request_queue_size = 128  # nginx opens many connections at once after a reload
    daemon_threads = True

    def __init__(self, answer: str) -> None:
        super().__init__(("127.0.0.1", 0), Answer)
        self.answer = answer.encode()


@contextmanager
def serving(answer: str) -> Iterator[Upstream]:
    server = AnswerServer(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Upstream(host="127.0.0.1", port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sites() -> Iterator[dict[str, Site]]:
    """The same site pointing at the backend answering "a", or at the one answering "b"."""
    with ExitStack() as stack:
        yield {answer: Site(service="web", server_names=[HOST],
                            upstreams=[stack.enter_context(serving(answer))])
               for answer in ("a", "b")}


def node_of(nginx: Nginx, state_dir: Path) -> Node:
    return Node(state_dir=state_dir, certs_dir=state_dir / "certs",
                runtime=DockerRuntime(f"unix://{state_dir}/no-docker.sock"), nginx=nginx,
                state_file=StateFile(state_dir / "desired-state.json"))


@pytest.fixture
def node(nginx: Nginx, tmp_path: Path) -> Node:
    return node_of(nginx, tmp_path)


async def get(nginx: Nginx, path: str = "/", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await http.get(f"http://127.0.0.1:{nginx.layout.http_port}{path}",
                              headers={"Host": HOST, **headers})


async def test_an_upstream_change_reloads_only_the_switch(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    await node.apply_site(sites["a"])
    assert (await get(nginx)).text == "a"
    edge_workers, switch_workers = nginx.edge.workers(), nginx.switch.workers()
    await node.apply_site(sites["b"])
    assert (await get(nginx)).text == "b"
    assert nginx.edge.workers() == edge_workers
    assert nginx.switch.workers() - switch_workers
    assert node.sites() == [sites["b"]]


def nginx_processes(nginx: Nginx) -> tuple[list[int], set[int], set[int]]:
    """Both masters and both layers' workers: a reload of either changes them."""
    return nginx.running_pids(), nginx.edge.workers(), nginx.switch.workers()


async def test_a_new_name_answers_without_any_reload(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    await node.apply_site(sites["a"])
    before = nginx_processes(nginx)
    assert (await get(nginx, Host="www.shop.test")).status_code == 404
    await node.apply_site(sites["a"].model_copy(update={"server_names": [HOST, "www.shop.test"]}))
    assert (await get(nginx, Host="www.shop.test")).text == "a"
    await node.apply_site(sites["a"])
    assert (await get(nginx, Host="www.shop.test")).status_code == 404
    assert (await get(nginx)).text == "a"
    assert nginx_processes(nginx) == before


async def test_a_name_moves_to_the_site_that_claims_it_and_back_when_that_goes(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    await node.apply_site(sites["a"])
    other = sites["b"].model_copy(update={"service": "api", "server_names": ["api.test", HOST]})
    await node.apply_site(other)
    assert [(await get(nginx)).text, (await get(nginx, Host="api.test")).text] == ["b", "b"]
    await node.remove_site("api")
    assert (await get(nginx)).text == "a"
    assert (await get(nginx, Host="api.test")).status_code == 404
    assert sorted(p.name for p in nginx.layout.hosts.iterdir()) == [HOST]


async def test_the_longest_routable_name_is_routed_and_a_longer_one_refused(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    """A unix socket's path holds 107 bytes: the edge connects to `<name>/switch.sock`."""
    longest = ".".join(["a" * 63, "b" * 31])
    await node.apply_site(sites["a"].model_copy(update={"server_names": [longest]}))
    assert (await get(nginx, Host=longest)).text == "a"
    longer = sites["b"].model_copy(update={"server_names": [HOST, f"c{longest}"]})
    with pytest.raises(InvalidInput, match="is 96 characters long; the edge routes names of "
                                           "at most 95"):
        await node.apply_site(longer)
    assert node.sites() == [sites["a"].model_copy(update={"server_names": [longest]})]
    assert (await get(nginx, Host=longest)).text == "a"
    await node.remove_site("web")
    assert (await get(nginx, Host=longest)).status_code == 404
    assert list(nginx.layout.hosts.iterdir()) == []


async def test_the_client_headers_reach_the_app_through_both_layers(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    await node.apply_site(sites["a"])
    answer = await get(nginx, "/headers", **{"X-Forwarded-For": "203.0.113.9"})
    assert answer.json() == {"Host": HOST, "X-Real-IP": "127.0.0.1",
                             "X-Forwarded-For": "203.0.113.9, 127.0.0.1",
                             "X-Forwarded-Proto": "http"}


async def test_removing_a_site_removes_it_from_both_layers(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    await node.apply_site(sites["a"])
    await node.remove_site("web")
    assert [nginx.edge.site_text("web"), nginx.switch.site_text("web")] == [None, None]
    assert not (nginx.layout.hosts / HOST).exists()
    assert not nginx.switch.layout.socket("web").exists()
    assert (await get(nginx)).status_code == 404
    assert node.sites() == []


def leave_a_stale_socket(path: Path) -> None:
    """What a killed nginx leaves behind: a socket file nothing listens on."""
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))


async def test_restore_starts_both_layers_from_the_desired_state(
    nginx: Nginx, tmp_path: Path, sites: dict[str, Site]
) -> None:
    await node_of(nginx, tmp_path).apply_site(sites["a"])
    stop_and_wait(nginx)
    leave_a_stale_socket(nginx.switch.layout.socket("web"))
    shutil.rmtree(nginx.layout.hosts)  # /run is emptied by a reboot
    await node_of(nginx, tmp_path).restore()
    assert len(nginx.running_pids()) == 2
    assert (await get(nginx)).text == "a"


async def test_an_agent_directory_closed_to_other_users_still_serves(
    nginx: Nginx, nginx_root: Path, sites: dict[str, Site]
) -> None:
    """The edge's workers run as nobody; the sockets live under /run, not in the agent's
    directory (which may sit under a private /root)."""
    if os.geteuid() != 0:
        pytest.fail("nginx workers run as nobody only under a root master: run this as root")
    nginx_root.parent.chmod(0o700)
    nginx.apply(sites["a"], [sites["a"]])
    assert nginx.switch.layout.socket("web").is_relative_to(SOCKETS_BASE)
    assert (await get(nginx)).text == "a"


def test_stop_stops_both_layers(nginx: Nginx) -> None:
    nginx.reload()
    assert len(nginx.running_pids()) == 2
    stop_and_wait(nginx)
    assert nginx.running_pids() == []


# Zero dropped requests while the upstream switches


@dataclass
class Load:
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


async def exchange(connection: Connection) -> tuple[int, str, bool]:
    """One request on a kept-alive connection: status, body, and whether it stays open."""
    reader, writer = connection
    writer.write(REQUEST)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
    body = (await reader.readexactly(length)).decode()
    return int(head.split(" ", 2)[1]), body, "connection: close" not in head


def close(connection: Connection | None) -> None:
    if connection is not None:
        connection[1].close()


async def strict_client(port: int, load: Load) -> None:
    """Never retries: a request that fails on its connection is a failed request."""
    connection: Connection | None = None
    while not load.stop.is_set():
        try:
            connection = connection or await asyncio.open_connection("127.0.0.1", port)
            status, body, keep = await asyncio.wait_for(exchange(connection), 10)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            load.failures.append(repr(exc))
            close(connection)
            connection = None
            continue
        if status == 200:
            load.answers[body] += 1
        else:
            load.failures.append(f"status {status}")
        if not keep:
            close(connection)
            connection = None
    close(connection)


async def until(condition: Callable[[], bool], what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:.0f} s")
        await asyncio.sleep(0.01)


def answered(load: Load, answer: str, times: int) -> Callable[[], bool]:
    return lambda: load.answers[answer] >= times


async def switch_back_and_forth(node: Node, sites: dict[str, Site], load: Load) -> None:
    """Each switch is applied, then awaited until the new backend answered many times."""
    try:
        await until(answered(load, "a", ANSWERS_PER_SWITCH), "the load on backend a")
        for index in range(SWITCHES):
            target = "ab"[(index + 1) % 2]
            await node.apply_site(sites[target])
            after = load.answers[target] + ANSWERS_PER_SWITCH
            await until(answered(load, target, after), f"switch {index + 1} to {target}")
    finally:
        load.stop.set()


async def test_a_strict_client_loses_no_request_while_the_upstream_switches(
    node: Node, nginx: Nginx, sites: dict[str, Site]
) -> None:
    await node.apply_site(sites["a"])
    edge_workers = nginx.edge.workers()
    load = Load()
    started = time.monotonic()
    clients = [strict_client(nginx.layout.http_port, load) for _ in range(CONCURRENCY)]
    await asyncio.gather(*clients, switch_back_and_forth(node, sites, load))
    seconds = time.monotonic() - started
    assert load.failures == [], f"{len(load.failures)} of {load.total} requests failed"
    assert load.answers["a"] > ANSWERS_PER_SWITCH
    assert load.answers["b"] > ANSWERS_PER_SWITCH
    assert nginx.edge.workers() == edge_workers, "the edge was reloaded"
    print(f"{load.total} requests, {SWITCHES} switches, {seconds:.1f} s, no failure")

