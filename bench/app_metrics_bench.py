"""What collecting app request metrics costs: requests per second through the agent's nginx
pair (edge on a loopback port, switch behind it) to stdlib backends, with the edge's request
log and the agent's collector on, and with both off, in the same run.

Two pairs run side by side, one with `request_log=False`; the collector reads the other's
log in its own process (as the agent does) and keeps it short. The same keep-alive client
(fixed concurrency, a fixed number of requests) loads each pair in turn, `--rounds` times;
the medians are printed, then how many requests the collector counted of those sent.
Prints the figures; asserts nothing.

    .venv/bin/python bench/app_metrics_bench.py [--requests 20000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nginx_reload import HOST, Connection, close, exchange, free_port, start_backend

from dockyard.agent.models import ContainerSummary, Site, Upstream
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx, NginxInstance
from dockyard.agent.request_metrics import POLL_SECONDS, RequestCollector

SERVICE = "bench"


async def worker(port: int, remaining: list[int], failures: list[int]) -> None:
    connection: Connection | None = None
    while remaining[0] > 0:
        remaining[0] -= 1
        try:
            connection = connection or await asyncio.open_connection("127.0.0.1", port)
            status, keep = await exchange(connection)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            failures[0] += 1
            await close(connection)
            connection = None
            continue
        failures[0] += status != 200
        if not keep:
            await close(connection)
            connection = None
    await close(connection)


async def load(port: int, requests: int, concurrency: int) -> tuple[float, int]:
    """Requests per second, and failures, of `requests` sent by `concurrency` workers."""
    remaining, failures = [requests], [0]
    started = time.monotonic()
    await asyncio.gather(*(worker(port, remaining, failures) for _ in range(concurrency)))
    return requests / (time.monotonic() - started), failures[0]


def pair(directory: Path, site: Site, request_log: bool) -> Nginx:
    directory.mkdir(mode=0o755)
    nginx = Nginx(NginxLayout(directory / "nginx", free_port(), free_port(),
                              request_log=request_log))
    nginx.prepare()
    nginx.apply(site, [site])
    return nginx


async def collect(root: Path) -> None:
    """The agent's collector alone, on the pair at `root`; prints what it counted at SIGTERM."""
    site = Site(service=SERVICE, server_names=[HOST], upstreams=[Upstream(host="127.0.0.1",
                                                                          port=1)])

    async def no_containers() -> list[ContainerSummary]:
        return []

    collector = RequestCollector(NginxInstance(NginxLayout(root)), lambda: [site],
                                 no_containers, root / "requests.position")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        await collector.step(time.time())
        await asyncio.sleep(POLL_SECONDS)
    await collector.step(math.inf)
    counted = sum(b.requests for b in collector.page(0, 1_000_000).buckets)
    print(json.dumps({"counted": counted, "malformed": collector.malformed}))


def stop_collector(collector: subprocess.Popen[str]) -> dict[str, int]:
    time.sleep(3 * POLL_SECONDS)  # nginx flushes its log buffer every second
    collector.send_signal(signal.SIGTERM)
    output, _ = collector.communicate(timeout=60)
    found: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return found


async def measure(pairs: dict[str, Nginx], requests: int, concurrency: int, rounds: int
                  ) -> tuple[dict[str, list[float]], int]:
    """Requests per second of each pair, in turns, and the failures of all runs."""
    figures: dict[str, list[float]] = {mode: [] for mode in pairs}
    failed = 0
    for nginx in pairs.values():
        await load(nginx.layout.http_port, 1000, concurrency)  # warm up
    for _ in range(rounds):
        for mode, nginx in pairs.items():
            rate, failures = await load(nginx.layout.http_port, requests, concurrency)
            figures[mode].append(rate)
            failed += failures
    return figures, failed


def main(requests: int, concurrency: int, rounds: int, backends: int) -> None:
    ports = [free_port() for _ in range(backends)]
    servers = [start_backend(port) for port in ports]
    site = Site(service=SERVICE, server_names=[HOST],
                upstreams=[Upstream(host="127.0.0.1", port=port) for port in ports])
    with tempfile.TemporaryDirectory(prefix="dy-bench-", dir="/var/tmp") as directory:
        Path(directory).chmod(0o755)
        pairs = {"off": pair(Path(directory) / "off", site, False),
                 "on": pair(Path(directory) / "on", site, True)}
        collector = subprocess.Popen(
            [sys.executable, __file__, "--collect", str(pairs["on"].layout.root)],
            stdout=subprocess.PIPE, text=True)
        try:
            figures, failed = asyncio.run(measure(pairs, requests, concurrency, rounds))
            counted = stop_collector(collector)
        finally:
            collector.kill()
            for nginx in pairs.values():
                nginx.stop()
            for server in servers:
                server.terminate()
                server.wait(timeout=10)
    report(figures, requests, concurrency, backends, failed, counted, rounds)


def report(figures: dict[str, list[float]], requests: int, concurrency: int, backends: int,
           failed: int, counted: dict[str, int], rounds: int) -> None:
    off, on = (statistics.median(figures[mode]) for mode in ("off", "on"))
    print(f"{requests} requests per run, concurrency {concurrency}, keep-alive client, "
          f"{backends} stdlib backends, {rounds} rounds (each: off, then on)")
    print("runs (requests/s): " + "; ".join(
        f"{mode} {', '.join(f'{rate:.0f}' for rate in rates)}" for mode, rates in figures.items()))
    print(f"collection off: {off:.0f} requests/s (median)")
    print(f"collection on:  {on:.0f} requests/s (median)")
    print(f"difference: {on - off:+.0f} requests/s ({100 * (on - off) / off:+.1f}%)")
    sent = rounds * requests + 1000
    print(f"failed requests: {failed}; counted by the collector: {counted['counted']} of {sent} "
          f"sent through the logging edge, {counted['malformed']} malformed lines")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--collect", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.collect:
        asyncio.run(collect(arguments.collect))
    else:
        main(arguments.requests, arguments.concurrency, arguments.rounds, arguments.backends)
