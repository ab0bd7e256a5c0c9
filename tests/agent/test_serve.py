"""The agent's own HTTP server (agent/serve.py) with a small Starlette app on a real socket:
keep-alive, bodies streamed both ways, a caller that leaves, the app's lifespan, a graceful
stop, and what a broken request or a failing app gets. (The agent itself, served by it, is
exercised by every test that starts `dockyard-agent`.)"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from dockyard.agent.serve import Listen, Server
from tests.agent.conftest import eventually_true
from tests.pg import free_port


@dataclass
class Seen:
    """What the app saw, for the tests to read."""

    peers: list[tuple[str, int]] = field(default_factory=list)
    lifespan: list[str] = field(default_factory=list)
    stream_closed: threading.Event = field(default_factory=threading.Event)
    slow_started: threading.Event = field(default_factory=threading.Event)


def app_for(seen: Seen) -> Starlette:
    async def hello(request: Request) -> Response:
        seen.peers.append(request.client and (request.client.host, request.client.port))
        return PlainTextResponse(f"hello {request.query_params.get('name', '')}")

    async def count(request: Request) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return StreamingResponse(b"x" * 65536 for _ in range(total // 65536))

    async def forever(request: Request) -> Response:
        async def ticks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.05)
            finally:
                seen.stream_closed.set()

        return StreamingResponse(ticks())

    async def slow(request: Request) -> Response:
        seen.slow_started.set()
        await asyncio.sleep(0.5)
        return PlainTextResponse("finished")

    async def broken(request: Request) -> Response:
        raise RuntimeError("the app broke")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        seen.lifespan.append("startup")
        yield
        seen.lifespan.append("shutdown")

    routes = [Route("/hello", hello), Route("/count", count, methods=["POST"]),
              Route("/forever", forever), Route("/slow", slow), Route("/broken", broken)]
    return Starlette(routes=routes, lifespan=lifespan)


@dataclass
class Running:
    server: Server
    url: str
    port: int
    seen: Seen
    thread: threading.Thread


@contextmanager
def serving(**options: float) -> Iterator[Running]:
    seen, port = Seen(), free_port()
    server = Server(app_for(seen), Listen("127.0.0.1", port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually_true(lambda: _accepts(port), "the server listening")
    try:
        yield Running(server, f"http://127.0.0.1:{port}", port, seen, thread)
    finally:
        server.request_exit()
        thread.join(timeout=15)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def running() -> Iterator[Running]:
    with serving(keep_alive_seconds=0.3, grace_seconds=5) as served:
        yield served


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_requests_on_one_connection_are_kept_alive_even_after_a_body_left_unread(
        running: Running) -> None:
    with httpx.Client(base_url=running.url) as http:
        answers = [http.get("/hello", params={"name": str(n)}).text for n in range(2)]
        unread = http.post("/hello", content=b"u" * 3_000_000)  # 405: the app never reads it
        answers.append(http.get("/hello", params={"name": "2"}).text)
    assert unread.status_code == 405
    assert answers == ["hello 0", "hello 1", "hello 2"]
    assert len(set(running.seen.peers)) == 1
    assert running.seen.lifespan == ["startup"]


def test_bodies_stream_both_ways(running: Running) -> None:
    sent = (b"y" * 65536 for _ in range(320))  # 20 MiB, chunked
    with httpx.Client(base_url=running.url) as http, http.stream(
            "POST", "/count", content=sent) as answer:
        received = sum(len(chunk) for chunk in answer.iter_bytes())
    assert (answer.status_code, received) == (200, 320 * 65536)


def test_a_caller_that_leaves_ends_the_stream_it_was_given(running: Running) -> None:
    with httpx.Client(base_url=running.url) as http, http.stream("GET", "/forever") as answer:
        assert next(answer.iter_bytes()).startswith(b"tick")
    assert running.seen.stream_closed.wait(timeout=5)


def test_an_idle_connection_is_closed_after_the_keep_alive_time(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, not by the 5 s timeout
        assert time.monotonic() - started < 4


def test_a_malformed_request_gets_400_and_a_failing_app_500(running: Running) -> None:
    assert raw_exchange(running.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    with httpx.Client(base_url=running.url) as http:
        failed = http.get("/broken")
        assert (failed.status_code, http.get("/hello").text) == (500, "hello ")


def test_a_caller_that_expects_100_continue_gets_it_then_the_answer(running: Running) -> None:
    request = (b"POST /count HTTP/1.1\r\nHost: agent\r\nExpect: 100-continue\r\n"
               b"Content-Length: 65536\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"z" * 65536)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_stop_lets_the_request_under_way_finish_then_runs_the_shutdown() -> None:
    with serving(keep_alive_seconds=30, grace_seconds=5) as served:
        idle = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        answers: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: answers.append(httpx.get(f"{served.url}/slow")))
        slow.start()
        assert served.seen.slow_started.wait(timeout=5)
        started = time.monotonic()
        served.server.request_exit()
        slow.join(timeout=10)
        served.thread.join(timeout=10)
        stopped_after = time.monotonic() - started
        idle.close()
    assert [(a.status_code, a.text) for a in answers] == [(200, "finished")]
    assert stopped_after < 3  # the idle connection did not hold the stop for its 30 s
    assert served.seen.lifespan == ["startup", "shutdown"]
    assert not _accepts(served.port)
