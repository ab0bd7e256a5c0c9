"""Domain figures on a real stage (root): `dockyard up`, a 3-node namespace cluster, a real
ACME server (pebble) whose HTTP-01 checks reach the first node, and the example app on all
three nodes.

1. seconds from `dockyard domains add` (certificate from pebble) until the first node
   answers the name over HTTPS with a certificate a client trusting pebble's root accepts,
   for several domains one after another;
2. zero downtime: a keep-alive HTTPS client without retries at fixed concurrency through
   one node while the certificate is renewed again and again (`dockyard domains renew`);
   failed requests and connection errors are counted.

Prints the figures; asserts nothing.

    .venv/bin/python bench/domains_bench.py [--domains 5] [--renewals 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.acme_server import Pebble, start_pebble
from tests.e2e.stage import EXAMPLE, Stage, staged
from tests.e2e.tls import https_get, under_https_load
from tests.live import dockyard, ok

QUICK = {"grace_seconds": 1, "health_interval_seconds": 0.1}


def first_https_answer(stage: Stage, name: str, roots: str) -> tuple[float, float]:
    """Seconds until the name answers over HTTPS through node1, and until the command ends."""
    began = time.monotonic()
    ended: list[float] = []

    def add() -> None:
        ok(dockyard("domains", "add", name, "-p", "bench", "-s", "site", env=stage.env,
                    timeout=300))
        ended.append(time.monotonic())

    command = threading.Thread(target=add)
    command.start()
    while True:
        try:
            if https_get(stage.nodes[0]["ip"], name, roots)[1] == "HTTP/1.1 200 OK":
                break
        except OSError:  # no certificate for the name yet: the handshake fails
            if not command.is_alive() and not ended:
                raise RuntimeError(f"dockyard domains add {name} failed") from None
            time.sleep(0.05)
    answered = time.monotonic()
    command.join()
    return answered - began, ended[0] - began


def main(domains: int, renewals: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            start_pebble(80, default_ipv4="10.235.0.2") as pebble:
        settings = {"DOCKYARD_ACME_DIRECTORY_URL": pebble.directory_url,
                    "DOCKYARD_ACME_CA_BUNDLE": str(pebble.ca_bundle)}
        for stage in staged(Path(tmp), settings):
            run(stage, pebble, domains, renewals, concurrency)


def run(stage: Stage, pebble: Pebble, domains: int, renewals: int, concurrency: int) -> None:
    roots = pebble.roots_pem()
    stage.ensure_service("bench", "site")
    events = stage.deploy_archive(EXAMPLE, project="bench", service="site",
                                  server=[n["name"] for n in stage.nodes], **QUICK)
    assert events[-1]["status"] == "succeeded", events[-5:]
    names = [f"d{i}.bench.test" for i in range(domains)]
    for name in names:  # pebble checks HTTP-01 at the first node
        pebble.add_a(name, stage.nodes[0]["ip"])
    figures = [first_https_answer(stage, name, roots) for name in names]
    answers = [a for a, _ in figures]
    print(f"1. domains add -> first HTTPS answer through node1 ({domains} domains): "
          f"median {statistics.median(answers):.2f} s, max {max(answers):.2f} s; the command "
          f"itself (all 3 servers installed) median "
          f"{statistics.median(c for _, c in figures):.2f} s")
    name = "d0.bench.test"
    began = time.monotonic()
    tally = under_https_load(stage.nodes[0]["ip"], name, roots, lambda: [ok(dockyard(
        "domains", "renew", name, env=stage.env, timeout=300)) for _ in range(renewals)],
        concurrency)
    seconds = time.monotonic() - began
    print(f"2. {renewals} renewals under a strict HTTPS client (keep-alive, no retries, "
          f"concurrency {concurrency}, {seconds:.0f} s): {tally.ok} ok, {tally.failed} failed "
          f"{tally.errors}; a client retrying once would have lost "
          f"{tally.failed - tally.saved_by_one_retry}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=5)
    parser.add_argument("--renewals", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    arguments = parser.parse_args()
    main(arguments.domains, arguments.renewals, arguments.concurrency)
