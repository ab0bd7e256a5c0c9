"""HTTPS through the static edge: handshakes per second with the certificate read at every
handshake (as the edge does now) against one loaded at start (as a per-site `ssl_certificate`
did before), and the requests lost while the certificate is renewed again and again.

Everything stays on loopback: a stdlib backend, the agent's own nginx pair and certificate
store, and a client at fixed concurrency that opens a new TLS connection for every request
(so every request is a full handshake) and never retries. The client shares the machine's
cores with nginx. Prints the figures; asserts nothing.

    .venv/bin/python bench/edge_tls_bench.py [--seconds 10] [--concurrency 16] [--renewals 50]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import ssl
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from nginx_reload import Tally, free_port, start_backend

from dockyard.agent import certs
from dockyard.agent.models import Site, Upstream
from dockyard.agent.nginx import NginxLayout, render_main
from dockyard.agent.proxy import Nginx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.agent.tls_ca import Authority, new_key

HOST = "bench.test"
REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()


async def one_request(port: int, context: ssl.SSLContext) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname=HOST)
    try:
        writer.write(REQUEST)
        await writer.drain()
        head = await reader.readuntil(b"\r\n")
        await reader.read()
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def worker(port: int, context: ssl.SSLContext, stop: asyncio.Event, tally: Tally) -> None:
    while not stop.is_set():
        try:
            status = await asyncio.wait_for(one_request(port, context), 10)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError,
                ValueError) as exc:
            tally.failure(type(exc).__name__)
            continue
        if status == 200:
            tally.ok += 1
        else:
            tally.failure(f"status {status}")


async def load(port: int, context: ssl.SSLContext, concurrency: int, seconds: float) -> Tally:
    tally, stop = Tally(), asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await asyncio.gather(*(worker(port, context, stop, tally) for _ in range(concurrency)))
    return tally


def edge_loading(nginx: Nginx, at_start: bool) -> None:
    """The edge as it is, or as before: this name's certificate file named in the
    configuration, loaded when nginx starts."""
    text = render_main(nginx.layout)
    if at_start:
        text = text.replace("/$dockyard_tls_name/", f"/{HOST}/")
    nginx.layout.conf.write_text(text)
    nginx.edge.check()
    nginx.edge.reload()


async def compare_loading(nginx: Nginx, context: ssl.SSLContext, concurrency: int,
                          seconds: float, rounds: int) -> None:
    """Alternately, so that other load on the machine weighs on both alike."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for at_start in (False, True):
            await asyncio.to_thread(edge_loading, nginx, at_start)
            tally = await load(nginx.layout.https_port, context, concurrency, seconds)
            rates[at_start].append((tally.ok + tally.failed) / seconds)
            if tally.failed:
                print(f"failed {tally.failed} {tally.errors}")
    for at_start, what in ((False, "read at every handshake (now)"),
                           (True, "loaded at start (before)")):
        print(f"{what}: median {statistics.median(rates[at_start]):.0f} handshakes/s "
              f"({', '.join(f'{rate:.0f}' for rate in rates[at_start])})")


def install(store: certs.CertificateStore, authority: Authority,
            key: ec.EllipticCurvePrivateKey | None = None) -> None:
    store.install(HOST, certs.checked(HOST, authority.issue(HOST, key=key).install()))


async def renewing(store: certs.CertificateStore, authority: Authority, renewals: int,
                   key: ec.EllipticCurvePrivateKey | None, done: asyncio.Event) -> None:
    """`renewals` certificates in turn, for `key` (None: a new key each time)."""
    await asyncio.sleep(1)
    for _ in range(renewals):
        issued = authority.issue(HOST, key=key)
        await asyncio.to_thread(store.install, HOST, certs.checked(HOST, issued.install()))
        await asyncio.sleep(0.1)
    done.set()


async def under_renewals(port: int, context: ssl.SSLContext, concurrency: int,
                         store: certs.CertificateStore, authority: Authority,
                         renewals: int, same_key: bool) -> tuple[Tally, float]:
    tally, stop = Tally(), asyncio.Event()
    key = new_key() if same_key else None
    if key is not None:  # the change of key happens before the load
        await asyncio.to_thread(install, store, authority, key)
    started = time.monotonic()
    await asyncio.gather(renewing(store, authority, renewals, key, stop),
                         *(worker(port, context, stop, tally) for _ in range(concurrency)))
    return tally, time.monotonic() - started


def report(what: str, tally: Tally, seconds: float) -> None:
    total = tally.ok + tally.failed
    print(f"{what}: {total} requests in {seconds:.1f} s ({total / seconds:.0f}/s), "
          f"failed {tally.failed} {tally.errors}")


def serving(directory: Path, backend_port: int, authority: Authority
            ) -> tuple[Nginx, certs.CertificateStore]:
    """The nginx pair serving HOST over HTTPS, and its certificate store."""
    directory.chmod(0o755)  # the edge's workers (user nobody) reach the sockets in it
    nginx = Nginx(NginxLayout(directory / "nginx", free_port(), free_port()))
    store = certs.CertificateStore(directory / "certs", nginx.layout.tls)
    nginx.prepare()
    site = Site(service="bench", server_names=[HOST],
                upstreams=[Upstream(host="127.0.0.1", port=backend_port)])
    nginx.apply(site, [site])
    install(store, authority)
    return nginx, store


def print_edge_errors(nginx: Nginx) -> None:
    """What the edge logged of the failed handshakes since last asked, by their reason."""
    log = nginx.layout.error_log
    lines = [line for line in log.read_text().splitlines()
             if "[error]" in line or "[crit]" in line]
    log.write_text("")
    reasons = Counter(re.sub(r"^.*?#\d+: (\*\d+ )?", "", line).split(" while ")[0]
                      for line in lines)
    print(f"edge errors: {dict(reasons)}")


async def main(seconds: float, concurrency: int, renewals: int, rounds: int) -> None:
    authority, backend_port = Authority(), free_port()
    backend = start_backend(backend_port)
    context = ssl.create_default_context(cadata=authority.pem)
    with tempfile.TemporaryDirectory(prefix="dy-bench-") as directory:
        nginx, store = serving(Path(directory), backend_port, authority)
        try:
            port = nginx.layout.https_port
            for same_key, what in ((False, "a new key each time"), (True, "the same key")):
                tally, took = await under_renewals(port, context, concurrency, store,
                                                   authority, renewals, same_key)
                report(f"while renewed {renewals} times, every 0.1 s, with {what}", tally, took)
                print_edge_errors(nginx)
            await compare_loading(nginx, context, concurrency, seconds, rounds)
        finally:
            nginx.stop()
            backend.terminate()
            backend.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--renewals", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.concurrency, arguments.renewals,
                     arguments.rounds))
