"""From a request to `dockyard metrics`: on a real stage (`dockyard up` plus a 3-node namespace
cluster, root), the example deployed; each round sends a burst of requests through the first
node's nginx and times until the service's metrics (the API `dockyard metrics` reads) count
them all: the agent's bucket closes 3 s after its 10 s, and the worker collects every 5 s.

Prints the figures; asserts nothing. Run under the cluster lock:

    flock /tmp/dockyard-cluster.lock .venv/bin/python bench/metrics_delay_bench.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.e2e.stage import EXAMPLE, Stage, staged

PROJECT, SERVICE, HOST = "delay", "hello", "hello.delay.localhost"
BURST = 50
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}


def counted(stage: Stage) -> int:
    found = stage.http.get(f"/projects/{PROJECT}/services/{SERVICE}/metrics",
                           params={"since": "1h"})
    found.raise_for_status()
    return sum(point["requests"] for point in found.json()["points"])


def timed_round(stage: Stage, before: int) -> float:
    """Seconds from the burst's last answer until the metrics count all of it."""
    for _ in range(BURST):
        assert stage.app(stage.nodes[0], HOST, "/").status_code == 200
    sent = time.monotonic()
    while counted(stage) < before + BURST:
        time.sleep(0.1)
    return time.monotonic() - sent


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dy-delay-bench-") as directory:
        for stage in staged(Path(directory) / "stage"):
            stage.ensure_service(PROJECT, SERVICE)
            events = stage.deploy_archive(EXAMPLE, project=PROJECT, service=SERVICE,
                                          server=[n["name"] for n in stage.nodes], **FAST)
            assert events[-1]["status"] == "succeeded", events[-3:]
            delays = []
            for number in range(rounds):
                delays.append(timed_round(stage, counted(stage)))
                print(f"round {number + 1}: {BURST} requests counted in `dockyard metrics` "
                      f"{delays[-1]:.1f} s after the last answer")
            print(f"delay request -> dockyard metrics: median {statistics.median(delays):.1f} s,"
                  f" max {max(delays):.1f} s over {rounds} rounds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="bursts to time")
    main(parser.parse_args().rounds)
