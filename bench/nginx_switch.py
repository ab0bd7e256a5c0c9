"""How many requests fail while the agent switches a site's upstream back and forth under load.

The counterpart of `nginx_reload.py` for the node's two nginx layers: two stdlib backends
answering "a" and "b", the agent's own `Nginx` pair (edge on a loopback port, switch behind
it on a unix socket), and the same keep-alive client at fixed concurrency that does not
retry. Each switch rewrites the switch layer's upstream and reloads only that layer. Prints
the figures; asserts nothing.

    .venv/bin/python bench/nginx_switch.py [--switches 50] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from nginx_reload import (
    HOST,
    REQUEST,
    Connection,
    Tally,
    close,
    free_port,
    retry_once,
    start_backend,
)

from dockyard.agent.models import Site, Upstream
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx

BACKEND = """
import http.server, sys
answer = sys.argv[2].encode()
class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
Server(("127.0.0.1", int(sys.argv[1])), Backend).serve_forever()
"""


async def exchange(connection: Connection) -> tuple[int, str, bool]:
    """One request on a kept-alive connection: status, body, and whether it stays open."""
    reader, writer = connection
    writer.write(REQUEST)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    body = (await reader.readexactly(length)).decode()
    return int(head.split(b" ", 2)[1]), body, b"connection: close" not in head


async def worker(port: int, stop: asyncio.Event, tally: Tally, answers: Counter[str]) -> None:
    """The strict client of `nginx_reload.worker`, also counting which backend answered."""
    connection: Connection | None = None
    while not stop.is_set():
        try:
            connection = connection or await asyncio.open_connection("127.0.0.1", port)
            status, body, keep = await exchange(connection)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            tally.failure(type(exc).__name__)
            await close(connection)
            connection = None
            saved = await retry_once(port)
            tally.saved_by_one_retry += saved
            continue
        if status == 200:
            tally.ok += 1
            answers[body] += 1
        else:
            tally.failure(f"status {status}")
        if not keep:
            await close(connection)
            connection = None
    await close(connection)


async def switches(nginx: Nginx, sites: list[Site], count: int, pause: float,
                   stop: asyncio.Event) -> tuple[float, list[float]]:
    """Apply the sites in turn; the seconds of the whole run and of each switch."""
    started, durations = time.monotonic(), []
    await asyncio.sleep(1)  # let the load reach a steady state first
    for index in range(count):
        begun = time.monotonic()
        site = sites[(index + 1) % 2]
        await asyncio.to_thread(nginx.apply, site, [site])
        durations.append(time.monotonic() - begun)
        await asyncio.sleep(pause)
    await asyncio.sleep(1)
    stop.set()
    return time.monotonic() - started, durations


def print_figures(count: int, concurrency: int, seconds: float, durations: list[float],
                  tally: Tally, answers: Counter[str], edge_reloaded: bool) -> None:
    total = tally.ok + tally.failed
    print(f"switches: {count} (switch layer write + nginx -t + reload each), concurrency: "
          f"{concurrency}, keep-alive client without retries")
    print(f"switch time: median {1000 * statistics.median(durations):.0f} ms, "
          f"max {1000 * max(durations):.0f} ms; edge reloaded: {'yes' if edge_reloaded else 'no'}")
    print(f"requests: {total} in {seconds:.1f} s ({total / seconds:.0f}/s), "
          f"answered by a: {answers['a']}, by b: {answers['b']}")
    print(f"failed: {tally.failed} ({100 * tally.failed / max(total, 1):.2f}%) {tally.errors}")
    print(f"of those, succeeded when retried once on a new connection: {tally.saved_by_one_retry}")


def prepared_nginx(directory: Path) -> Nginx:
    directory.chmod(0o755)  # the edge's workers (user nobody) connect to sockets in it
    nginx = Nginx(NginxLayout(directory / "nginx", http_port=free_port(), https_port=free_port()))
    nginx.prepare()
    return nginx


async def main(count: int, concurrency: int, pause: float) -> None:
    ports = [free_port(), free_port()]
    backends = [start_backend(port, BACKEND, answer)
                for port, answer in zip(ports, "ab", strict=True)]
    with tempfile.TemporaryDirectory(prefix="dy-bench-") as directory:
        nginx = prepared_nginx(Path(directory))
        sites = [Site(service="bench", server_names=[HOST],
                      upstreams=[Upstream(host="127.0.0.1", port=port)]) for port in ports]
        nginx.apply(sites[0], [sites[0]])
        edge_workers = nginx.edge.workers()
        tally, answers, stop = Tally(), Counter[str](), asyncio.Event()
        try:
            *_, (seconds, durations) = await asyncio.gather(
                *(worker(nginx.layout.http_port, stop, tally, answers)
                  for _ in range(concurrency)),
                switches(nginx, sites, count, pause, stop))
            edge_reloaded = nginx.edge.workers() != edge_workers
        finally:
            nginx.stop()
            for backend in backends:
                backend.terminate()
                backend.wait(timeout=10)
    print_figures(count, concurrency, seconds, durations, tally, answers, edge_reloaded)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between switches")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.switches, arguments.concurrency, arguments.pause))
