"""How fast a node heals, on a real stage (`dockyard up` plus a 3-node namespace cluster, root).

A strict keep-alive client (no retries) at fixed concurrency requests the example app through
the first node's nginx while, in turn: the edge nginx is SIGKILLed (master and workers), then
the switch nginx, then the node agent itself. The agent's supervisor restarts a dead nginx
layer; the agent is restarted the way the service manager would (here: by this script, at
once, as `dockyard cluster` starts it). For each kill: the failed requests, the seconds from
the kill until the last failure (traffic back), the supervisor's event, and the server's
status as `servers check` saw it meanwhile.

Prints the figures; asserts nothing. Run it under the cluster lock:

    flock /tmp/dockyard-cluster.lock .venv/bin/python bench/heal_bench.py [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from deploy_bench import PROJECT, code_deploy, load_until
from nginx_reload import Tally

from dockyard.agent import process
from dockyard.agent.proxy import NginxInstance
from dockyard.providers.cluster import Cluster, NodeRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.agent.test_supervise import kill_layer
from tests.e2e.stage import Stage, first_node, staged

QUIET_SECONDS = 3.0  # traffic is back when no request failed for this long
SETTLE_SECONDS = 5.0


class Timeline:
    """When the failure count last moved, and the server's statuses as `check` saw them."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.last_failure = 0.0
        self.statuses: list[tuple[float, str, str]] = []

    def status(self) -> str:
        return self.statuses[-1][1] if self.statuses else "unknown"

    async def watch_failures(self, stop: asyncio.Event) -> None:
        seen = self.tally.failed
        while not stop.is_set():
            if self.tally.failed != seen:
                seen, self.last_failure = self.tally.failed, time.monotonic()
            await asyncio.sleep(0.005)

    def watch_status(self, stage: Stage, server_id: str, stop: threading.Event) -> None:
        while not stop.is_set():
            server = stage.http.post(f"/infra/servers/{server_id}/check").json()
            if not self.statuses or self.statuses[-1][1:] != (server["status"],
                                                              server["status_reason"]):
                self.statuses.append((time.monotonic(), server["status"],
                                      server["status_reason"]))
            stop.wait(0.25)


def kill_nginx(layer: NginxInstance) -> str:
    """SIGKILL a layer's master and workers (the supervisor restarts it)."""
    return f"killed {len(kill_layer(layer))} processes"


def kill_agent(cluster: Cluster, node: NodeRecord) -> str:
    """SIGKILL the agent, then start it again at once; how long until it answered."""
    assert node.agent is not None
    pid = node.agent.pid
    os.kill(pid, signal.SIGKILL)
    while process.is_running(pid):
        time.sleep(0.01)
    began = time.monotonic()
    cluster.start_agent(node)
    return f"agent answering again {time.monotonic() - began:.2f} s after its restart began"


def last_event(node: NodeRecord) -> str:
    path = node.agent_dir / "supervision-events.json"
    events: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    return f"{events[-1]['process']} {events[-1]['action']}: {events[-1]['detail']}" \
        if events else "no event"


def phase(name: str, kill: Callable[[], str], timeline: Timeline) -> None:
    time.sleep(SETTLE_SECONDS)
    failed, answered = timeline.tally.failed, timeline.tally.ok
    killed = time.monotonic()
    note = kill()
    while time.monotonic() - max(killed, timeline.last_failure) < QUIET_SECONDS:
        time.sleep(0.05)
    while timeline.status() != "active" and time.monotonic() - killed < 30:
        time.sleep(0.05)
    back = max(0.0, timeline.last_failure - killed) if timeline.tally.failed > failed else 0.0
    print(f"{name}: {timeline.tally.failed - failed} failed of "
          f"{timeline.tally.ok - answered + timeline.tally.failed - failed} requests; "
          f"traffic back {back:.2f} s after the kill; {note}")
    seen = [f"{t - killed:+.2f} s {status} {reason}".rstrip()
            for t, status, reason in timeline.statuses if t >= killed - 0.3]
    print(f"  server status: {' | '.join(seen) or 'unchanged'}")


def kill_in_turn(stage: Stage, timeline: Timeline) -> None:
    cluster, node = first_node(stage)
    nginx = cluster.nginx(node)
    for layer in ("edge", "switch"):
        instance = getattr(nginx, layer)
        phase(f"{layer} nginx", partial(kill_nginx, instance), timeline)
        print(f"  event: {last_event(node)}")
    phase("agent", lambda: kill_agent(cluster, node), timeline)


async def under_load(stage: Stage, concurrency: int) -> None:
    tally, stop, status_stop = Tally(), asyncio.Event(), threading.Event()
    timeline = Timeline(tally)
    load = asyncio.create_task(load_until(stage, concurrency, stop, tally))
    watch = asyncio.create_task(timeline.watch_failures(stop))
    statuses = threading.Thread(target=timeline.watch_status,
                                args=(stage, stage.nodes[0]["id"], status_stop))
    statuses.start()
    try:
        await asyncio.to_thread(kill_in_turn, stage, timeline)
    finally:
        stop.set()
        status_stop.set()
        await asyncio.gather(load, watch)
        statuses.join()
    print(f"in all: {tally.ok + tally.failed} requests at concurrency {concurrency}, "
          f"failed {tally.failed} {tally.errors}; succeeded when retried once: "
          f"{tally.saved_by_one_retry}")


def main(concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dy-heal-bench-") as directory:
        for stage in staged(Path(directory)):
            stage.ensure_service(PROJECT, "web")
            events = list(code_deploy(stage, "web", [stage.nodes[0]["name"]])())
            print(f"deployed the example: {events[-1]['status']}")
            asyncio.run(under_load(stage, concurrency))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    main(parser.parse_args().concurrency)
