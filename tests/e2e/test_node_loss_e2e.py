"""Node loss on the namespace cluster: the example app on all three servers and a strict
client spreading its requests over the servers that take traffic (as a client re-resolving
DNS at every request would: the control plane's view, read every 0.5 s). One server's agent
and nginx stop: it is marked down within 30 s (the default 10 s traffic checks), and until
then only the requests sent to it fail; once its agent is back it takes traffic again."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from bench.nginx_reload import Tally, close, connect, exchange

from tests.e2e.stage import EXAMPLE, Stage, first_node
from tests.live import dockyard, ok_json, wait_until

pytestmark = pytest.mark.slow
HOST = "web.loss.localhost"
SERVICE = "loss/web"
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()


def taking_traffic(stage: Stage) -> list[str]:
    """The addresses of the servers whose copy of loss/web takes traffic now."""
    listed = ok_json(dockyard("servers", "list", "--json", env=stage.env))
    return sorted(s["ip"] for s in listed if not s["drained"]
                  and SERVICE not in [d["service"] for d in s["down_copies"]])


class Spread:
    """A strict client (no retry) over the addresses `view` last said, one connection per
    request; failures counted per address."""

    def __init__(self, view: list[str]) -> None:
        self.view, self.tally, self.failed_at = view, Tally(), dict[str, int]()

    async def worker(self, offset: int, halt: asyncio.Event) -> None:
        turn = offset
        while not halt.is_set():
            addresses, turn = self.view, turn + 1
            await self.one(addresses[turn % len(addresses)])

    async def one(self, address: str) -> None:
        connection = None
        try:
            connection = await connect(address, 80)
            status, _ = await exchange(connection, REQUEST)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            self.tally.failure(type(exc).__name__)
            self.failed_at[address] = self.failed_at.get(address, 0) + 1
            await asyncio.sleep(0.01)  # a refused connection comes back at once
            return
        finally:
            await close(connection)
        if status == 200:
            self.tally.ok += 1
        else:
            self.tally.failure(f"status {status}")
            self.failed_at[address] = self.failed_at.get(address, 0) + 1


def under_load(stage: Stage, action: Callable[[Spread], Any], concurrency: int = 12
               ) -> Spread:
    spread, stop = Spread(taking_traffic(stage)), threading.Event()

    def follow() -> None:
        while not stop.wait(0.5):
            spread.view = taking_traffic(stage) or spread.view

    async def load() -> None:
        halt = asyncio.Event()
        workers = [asyncio.create_task(spread.worker(i, halt)) for i in range(concurrency)]
        await asyncio.to_thread(stop.wait)
        halt.set()
        await asyncio.gather(*workers)

    threads = [threading.Thread(target=follow), threading.Thread(target=lambda: asyncio.run(
        load()))]
    for thread in threads:
        thread.start()
    try:
        action(spread)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return spread


def test_a_lost_server_is_marked_down_and_only_its_requests_fail(stage: Stage) -> None:
    stage.ensure_service("loss", "web")
    events = stage.deploy_archive(EXAMPLE, project="loss", service="web",
                                  server=[n["name"] for n in stage.nodes], grace_seconds=0.5,
                                  health_interval_seconds=0.2)
    assert events[-1].get("status") == "succeeded", events[-5:]
    everyone = sorted(n["ip"] for n in stage.nodes)
    wait_until(lambda: taking_traffic(stage) == everyone, "every copy taking traffic", 60)
    cluster, _ = first_node(stage)
    [lost] = [n for n in cluster.state.nodes if n.ip == stage.nodes[2]["ip"]]
    name = stage.nodes[2]["name"]
    measured: dict[str, float] = {}

    def lose_a_server(spread: Spread) -> None:
        time.sleep(2)
        stopped = time.monotonic()
        cluster.stop_agent(lost)
        cluster.nginx(lost).stop()
        try:
            wait_until(lambda: lost.ip not in spread.view, "the lost server marked down", 60)
            measured["down"] = time.monotonic() - stopped
            time.sleep(3)
        finally:
            cluster.start_agent(lost)
        restarted = time.monotonic()
        wait_until(lambda: lost.ip in spread.view, "the server taking traffic again", 90)
        measured["back"] = time.monotonic() - restarted
        time.sleep(2)

    spread = under_load(stage, lose_a_server)
    print(f"node loss under a strict client over 3 servers: {spread.tally.ok} ok, "
          f"{spread.tally.failed} failed {spread.failed_at}; marked down "
          f"{measured['down']:.1f} s after its agent and nginx stopped, taking traffic "
          f"again {measured['back']:.1f} s after its agent was started")
    assert measured["down"] < 30
    assert set(spread.failed_at) <= {lost.ip}
    assert spread.tally.ok > 100
    shown = ok_json(dockyard("servers", "events", name, "--json", env=stage.env))
    said = [e["message"] for e in shown["events"]  # the other modules' services say theirs
            if e["kind"] == "traffic" and e["message"].startswith(f"{SERVICE} ")]
    assert said[-2:] == [f"{SERVICE} down on {name}: agent unreachable (connection refused)",
                         f"{SERVICE} up again on {name}"]
