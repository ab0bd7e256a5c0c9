"""What end-to-end domain tests and the domains bench share: the fake Cloudflare as its own
process, the certificate a server presents for a name, and a strict HTTPS client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.nginx_reload import Tally, worker

from tests.acme_server import free_port
from tests.live import wait_until

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def cloudflare_process(state: Path, zone: str, token: str) -> Iterator[str]:
    """The fake Cloudflare API as its own process (its state in `state`); its base URL. On
    the way out, no answer of it may have broken Cloudflare's API document."""
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.cloudflare", "--port", str(port), "--state",
         str(state), "--zone", zone, "--token", token], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(port) or fake.poll() is not None, "the fake Cloudflare", 30)
        if fake.poll() is not None:
            raise RuntimeError(f"the fake Cloudflare exited with {fake.returncode}: "
                               f"{fake.stdout.read().decode() if fake.stdout else ''}")
        yield f"http://127.0.0.1:{port}/client/v4"
    finally:
        fake.terminate()
        fake.wait(10)
    violations = json.loads(state.read_text()).get("violations", []) if state.exists() else []
    assert violations == [], f"answers outside Cloudflare's API document: {violations}"


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def https_get(address: str, name: str, roots: str, port: int = 443) -> tuple[str, str]:
    """The sha256 of the certificate `address` presents for `name` (verified against `roots`
    only) and the status line it answers `GET /` with."""
    context = ssl.create_default_context(cadata=roots)
    with socket.create_connection((address, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert der is not None
    return hashlib.sha256(der).hexdigest(), answer.split(b"\r\n", 1)[0].decode()


def under_https_load(address: str, name: str, roots: str, action: Callable[[], Any],
                     concurrency: int = 16, port: int = 443) -> Tally:
    """A strict HTTPS client (keep-alive, no retries) through one server while `action`
    runs."""
    tally, stop = Tally(), threading.Event()
    context = ssl.create_default_context(cadata=roots)
    request = f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode()

    async def load() -> None:
        halt = asyncio.Event()
        workers = [asyncio.create_task(worker(port, halt, tally, address, request,
                                              tls=context, server_hostname=name))
                   for _ in range(concurrency)]
        await asyncio.to_thread(stop.wait)
        halt.set()
        await asyncio.gather(*workers)

    thread = threading.Thread(target=lambda: asyncio.run(load()))
    thread.start()
    try:
        action()
    finally:
        stop.set()
        thread.join()
    return tally
