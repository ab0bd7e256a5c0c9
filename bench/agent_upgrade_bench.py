"""Agent upgrades in place: seconds per upgrade, and requests failed through the node's nginx.

A real agent process runs from a release layout in a temporary directory (its python with
PYTHONPATH=current, as on a provisioned server; Docker absent, nginx real), with one site
whose upstream is a stdlib backend. It is upgraded N times in a row (each bundle a copy of
the code with one more file, so each has its own version), while a keep-alive client without
retries sends GET / through the agent's nginx at fixed concurrency. For each upgrade: seconds
from the push until /healthz answers with the new version. Prints the figures; asserts nothing.

    flock /tmp/dockyard-cluster.lock .venv/bin/python bench/agent_upgrade_bench.py \
        [--upgrades 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from nginx_reload import HOST, Tally, free_port, start_backend, worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.agent.test_upgrade import bundle_of, with_extra_file
from tests.agent.test_upgrade_inplace import ReleasedAgent, start_released_agent

from dockyard.agent.models import Site, Upstream
from dockyard.agent.release import Bundle


def strict_load(port: int, concurrency: int, tally: Tally, stop: threading.Event) -> None:
    async def run() -> None:
        halt = asyncio.Event()
        workers = [asyncio.create_task(worker(port, halt, tally)) for _ in range(concurrency)]
        await asyncio.to_thread(stop.wait)
        halt.set()
        await asyncio.gather(*workers)

    asyncio.run(run())


async def upgrade(agent: ReleasedAgent, bundle: Bundle) -> float:
    """Seconds from the push until the agent answers with the bundle's version."""
    began = time.monotonic()
    async with agent.client() as client:
        await client.upgrade_agent(bundle)
    while agent.version() != bundle.version:
        if time.monotonic() - began > 120:
            raise RuntimeError(f"the agent did not answer with {bundle.version} in 120 s")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def upgrades(agent: ReleasedAgent, bundles: list[Bundle]) -> list[float]:
    await asyncio.sleep(1)  # the load reaches a steady state first
    seconds = [await upgrade(agent, bundle) for bundle in bundles]
    await asyncio.sleep(1)
    return seconds


def measure(root: Path, count: int, concurrency: int) -> None:
    bundles = [bundle_of(root, f"b{i}", with_extra_file(f"bench{i}")) for i in range(count + 1)]
    backend_port = free_port()
    backend = start_backend(backend_port)
    agent = start_released_agent(root / "node", bundles[0])
    tally, stop = Tally(), threading.Event()
    try:
        site = Site(service="bench", server_names=[HOST],
                    upstreams=[Upstream(host="127.0.0.1", port=backend_port)])
        asyncio.run(apply(agent, site))
        load = threading.Thread(target=strict_load, args=(
            agent.nginx.layout.http_port, concurrency, tally, stop))
        load.start()
        try:
            seconds = asyncio.run(upgrades(agent, bundles[1:]))
        finally:
            stop.set()
            load.join()
        same_pid = agent.child.poll() is None
    finally:
        agent.stop()
        backend.terminate()
        backend.wait(timeout=10)
    report(seconds, same_pid, tally, concurrency)


async def apply(agent: ReleasedAgent, site: Site) -> None:
    async with agent.client() as client:
        await client.apply_site(site)


def report(seconds: list[float], same_pid: bool, tally: Tally, concurrency: int) -> None:
    print(f"upgrades: {len(seconds)}, push -> new version answers: mean "
          f"{statistics.mean(seconds):.2f} s, min {min(seconds):.2f} s, "
          f"max {max(seconds):.2f} s ({', '.join(f'{s:.2f}' for s in seconds)})")
    print(f"the agent kept its pid through every upgrade: {same_pid}")
    total = tally.ok + tally.failed
    print(f"requests through the agent's nginx (keep-alive, no retries, concurrency "
          f"{concurrency}): {total}, failed: {tally.failed} {tally.errors}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrades", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="dy-upb-", dir="/var/tmp"))
    directory.chmod(0o755)  # nginx workers (nobody) reach the sockets in here
    try:
        measure(directory, arguments.upgrades, arguments.concurrency)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
