"""How many requests fail through nginx while the agent reloads it 50 times under load.

Everything stays on loopback: a stdlib backend, one nginx run by the agent's own `Nginx`
(`nginx -t`, reload; since the edge became static nothing reloads it for a site, so this
measures the reload as such), and a keep-alive client at fixed concurrency that does not
retry. Prints the figures; asserts nothing.

    .venv/bin/python bench/nginx_reload.py [--reloads 50] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.agent.models import Site, Upstream
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx

HOST = "bench.test"


BACKEND = """
import http.server, sys
class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Backend).serve_forever()
"""


def start_backend(port: int, script: str = BACKEND, *arguments: str) -> subprocess.Popen[bytes]:
    """A stdlib HTTP/1.1 backend in its own process, so it does not share our GIL."""
    backend = subprocess.Popen([sys.executable, "-c", script, str(port), *arguments])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return backend
        time.sleep(0.05)
    backend.kill()
    raise RuntimeError("the backend did not start")


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    saved_by_one_retry: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def failure(self, kind: str) -> None:
        self.failed += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def exchange(connection: Connection, request: bytes = REQUEST) -> tuple[int, bool]:
    """One request on a kept-alive connection: the status, and whether nginx keeps it open."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), b"connection: close" not in head


async def close(connection: Connection | None) -> None:
    if connection is not None:
        connection[1].close()


async def connect(address: str, port: int, tls: ssl.SSLContext | None = None,
                  server_hostname: str | None = None) -> Connection:
    """A connection, over TLS (with SNI) when `tls` is given."""
    if tls is None:
        return await asyncio.open_connection(address, port)
    return await asyncio.open_connection(address, port, ssl=tls, server_hostname=server_hostname)


async def worker(port: int, stop: asyncio.Event, tally: Tally, address: str = "127.0.0.1",
                 request: bytes = REQUEST, *, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None) -> None:
    """A strict client: a request that fails on its kept-alive connection counts as failed,
    then is tried once on a new connection to see whether a retrying client would cope."""
    connection: Connection | None = None
    while not stop.is_set():
        try:
            connection = connection or await connect(address, port, tls, server_hostname)
            status, keep = await exchange(connection, request)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            tally.failure(type(exc).__name__)
            await close(connection)
            connection = None
            # awaited first: `+= await` would lose updates
            saved = await retry_once(port, address, request, tls, server_hostname)
            tally.saved_by_one_retry += saved
            continue
        if status == 200:
            tally.ok += 1
        else:
            tally.failure(f"status {status}")
        if not keep:
            await close(connection)
            connection = None
    await close(connection)


async def retry_once(port: int, address: str = "127.0.0.1", request: bytes = REQUEST,
                     tls: ssl.SSLContext | None = None, server_hostname: str | None = None
                     ) -> bool:
    fresh: Connection | None = None
    try:
        fresh = await connect(address, port, tls, server_hostname)
        status, _ = await exchange(fresh, request)
        return status == 200
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return False
    finally:
        await close(fresh)


async def load(port: int, concurrency: int, stop: asyncio.Event, tally: Tally) -> None:
    await asyncio.gather(*(worker(port, stop, tally) for _ in range(concurrency)))


async def reloads(nginx: Nginx, count: int, pause: float, stop: asyncio.Event) -> float:
    started = time.monotonic()
    await asyncio.sleep(1)  # let the load reach a steady state first
    for _ in range(count):
        await asyncio.to_thread(nginx.edge.check)
        await asyncio.to_thread(nginx.edge.reload)
        await asyncio.sleep(pause)
    await asyncio.sleep(1)
    stop.set()
    return time.monotonic() - started


async def main(count: int, concurrency: int, pause: float) -> None:
    backend_port = free_port()
    backend = start_backend(backend_port)
    with tempfile.TemporaryDirectory(prefix="dy-bench-") as directory:
        os.chmod(directory, 0o755)  # noqa: S103 - nginx workers (nobody) reach the sockets
        nginx = Nginx(NginxLayout(Path(directory) / "nginx", http_port=free_port(),
                                  https_port=free_port()))
        nginx.prepare()
        site = Site(service="bench", server_names=[HOST],
                    upstreams=[Upstream(host="127.0.0.1", port=backend_port)])
        nginx.apply(site, [site])
        tally, stop = Tally(), asyncio.Event()
        try:
            _, seconds = await asyncio.gather(
                load(nginx.layout.http_port, concurrency, stop, tally),
                reloads(nginx, count, pause, stop))
        finally:
            nginx.stop()
            backend.terminate()
            backend.wait(timeout=10)
    total = tally.ok + tally.failed
    print(f"reloads: {count} (write + nginx -t + reload each), concurrency: {concurrency}, "
          f"keep-alive client without retries")
    print(f"requests: {total} in {seconds:.1f} s ({total / seconds:.0f}/s)")
    print(f"failed: {tally.failed} ({100 * tally.failed / max(total, 1):.2f}%) {tally.errors}")
    print(f"of those, succeeded when retried once on a new connection: {tally.saved_by_one_retry}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between reloads")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.reloads, arguments.concurrency, arguments.pause))
