"""Deploy figures on a real stage: `dockyard up` plus a 3-node namespace cluster (root).

1. image deploy to 1 node: seconds from the API call until the new version answers;
2. code deploy of examples/hello with a warm build cache;
3. rollback to the previous release;
4. the same image deploy to 1 node and to 3 nodes (the ratio);
5. zero downtime: a keep-alive client without retries at fixed concurrency through one
   node's nginx while deploys and rollbacks alternate; non-2xx answers and connection
   errors are counted;
6. the same client while the service is scaled web 1 -> 3, restarted, scaled 3 -> 1 and
   restarted again (`dockyard scale`, `dockyard restart`).

Prints the figures; asserts nothing.

    .venv/bin/python bench/deploy_bench.py [--concurrency 32] [--cycles 5] [--requests 20000]
        [--only-churn | --only-scale]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nginx_reload import Tally, worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
from tests.e2e.stage import EXAMPLE, Stage, staged, tar_gz_of

PROJECT = "bench"
QUICK = {"grace_seconds": 1, "health_interval_seconds": 0.1}
Events = Iterator[dict[str, Any]]


def host(service: str) -> str:
    return f"{service}.{PROJECT}.localhost"


def answering(stage: Stage, node: dict[str, Any], service: str, release: str) -> bool:
    try:
        answer = stage.app(node, host(service))
    except Exception:  # not answering yet
        return False
    return answer.status_code == 200 and answer.json().get("release") == release


def timed(stage: Stage, start: Callable[[], Events], service: str, node: dict[str, Any]
          ) -> tuple[float, float]:
    """Seconds until the new release answers through `node`'s nginx, and until done."""
    began = time.monotonic()
    events = start()
    first = next(events)
    finished: list[float] = []
    rest = threading.Thread(target=lambda: (list(events), finished.append(time.monotonic())))
    rest.start()
    release = first["deployment_id"][:8]
    while not answering(stage, node, service, release) and rest.is_alive():
        time.sleep(0.02)
    answered = time.monotonic() - began
    rest.join()
    return answered, finished[0] - began


def image_deploy(stage: Stage, service: str, image: str, servers: list[str]
                 ) -> Callable[[], Events]:
    body = {"project": PROJECT, "service": service, "servers": servers, "params": QUICK,
            "source": {"kind": "image", "image": image}}
    return lambda: stage.stream("/infra/deploy", json=body)


def code_deploy(stage: Stage, service: str, servers: list[str]) -> Callable[[], Events]:
    query = {"project": PROJECT, "service": service, "server": servers, **QUICK}
    return lambda: stage.stream("/infra/deploy", params=query, content=tar_gz_of(EXAMPLE),
                                headers={"Content-Type": "application/gzip"})


def report(name: str, figures: tuple[float, float]) -> None:
    print(f"{name}: answering after {figures[0]:.2f} s, done after {figures[1]:.2f} s "
          f"(done includes the {QUICK['grace_seconds']} s drain)")


def scenarios_1_to_4(stage: Stage) -> str:
    one, everyone = stage.nodes[0], [n["name"] for n in stage.nodes]
    for service in ("web", "copy", "spread", "wide", "wide3"):
        stage.ensure_service(PROJECT, service)
    report("cold code deploy (first build, 1 node)",
           timed(stage, code_deploy(stage, "web", [one["name"]]), "web", one))
    report("2. code deploy, warm build cache (1 node)",
           timed(stage, code_deploy(stage, "web", [one["name"]]), "web", one))
    image = stage.history(PROJECT, "web")[0]["image_tag"]
    report("1. image deploy (1 node)",
           timed(stage, image_deploy(stage, "copy", image, [one["name"]]), "copy", one))
    back = lambda: stage.stream("/infra/deployments/rollback",  # noqa: E731
                                json={"project": PROJECT, "service": "web"})
    report("3. rollback to the previous release", timed(stage, back, "web", one))
    cold = timed(stage, image_deploy(stage, "spread", image, everyone), "spread", stage.nodes[2])
    report("image deploy to 3 nodes, two of them pulling the base layers first", cold)
    single = timed(stage, image_deploy(stage, "wide", image, [one["name"]]), "wide", one)
    triple = timed(stage, image_deploy(stage, "wide3", image, everyone), "wide3", stage.nodes[2])
    report("4. image deploy to 1 node", single)
    report("4. image deploy to 3 nodes (layers already there)", triple)
    print(f"4. ratio 3 nodes / 1 node (until done): {triple[1] / single[1]:.2f}")
    return image


async def load_until(stage: Stage, concurrency: int, stop: asyncio.Event, tally: Tally) -> None:
    request = f"GET / HTTP/1.1\r\nHost: {host('web')}\r\n\r\n".encode()
    address = stage.nodes[0]["ip"]
    await asyncio.gather(*(worker(80, stop, tally, address, request)
                           for _ in range(concurrency)))


Step = tuple[str, dict[str, Any]]


def deploys_and_rollbacks() -> list[Step]:
    release = {"project": PROJECT, "service": "web", "source": {"kind": "release"},
               "params": QUICK}
    return [("/infra/deploy", release),
            ("/infra/deployments/rollback", {"project": PROJECT, "service": "web"})]


def scaling_and_restarts() -> list[Step]:
    service = f"/projects/{PROJECT}/services/web"
    return [(f"{service}/scale", {"scale": {"web": 3}}), (f"{service}/restart", {}),
            (f"{service}/scale", {"scale": {"web": 1}}), (f"{service}/restart", {})]


def churn(stage: Stage, steps: list[Step], cycles: int, results: list[str]) -> None:
    for _ in range(cycles):
        for path, body in steps:
            events = list(stage.stream(path, json=body or None))
            results.append(events[-1]["status"])


async def under_load(stage: Stage, concurrency: int, steps: list[Step], cycles: int,
                     minimum: int) -> tuple[Tally, float, list[str]]:
    """The strict client's tally while `steps` run `cycles` times, and the seconds it took."""
    tally, stop, results = Tally(), asyncio.Event(), list[str]()
    began = time.monotonic()
    load = asyncio.create_task(load_until(stage, concurrency, stop, tally))
    await asyncio.to_thread(churn, stage, steps, cycles, results)
    while tally.ok + tally.failed < minimum:  # noqa: ASYNC110 - a plain counter, no event
        await asyncio.sleep(0.1)
    stop.set()
    await load
    return tally, time.monotonic() - began, results


def report_load(number: int, tally: Tally, seconds: float) -> None:
    total = tally.ok + tally.failed
    print(f"{number}. requests: {total} in {seconds:.1f} s ({total / seconds:.0f}/s); failed "
          f"{tally.failed} {tally.errors}; succeeded when retried once: "
          f"{tally.saved_by_one_retry}")


async def scenario_5(stage: Stage, concurrency: int, cycles: int, minimum: int) -> None:
    tally, seconds, results = await under_load(stage, concurrency, deploys_and_rollbacks(),
                                               cycles, minimum)
    print(f"5. zero downtime: {cycles} deploys + {cycles} rollbacks ({results.count('succeeded')} "
          f"succeeded) under concurrency {concurrency}, keep-alive client without retries")
    report_load(5, tally, seconds)


async def scenario_6(stage: Stage, concurrency: int, cycles: int, minimum: int) -> None:
    tally, seconds, results = await under_load(stage, concurrency, scaling_and_restarts(),
                                               cycles, minimum)
    print(f"6. zero downtime: {cycles} x (scale web 1->3, restart, scale 3->1, restart) "
          f"({results.count('succeeded')} of {len(results)} succeeded) under concurrency "
          f"{concurrency}, keep-alive client without retries")
    report_load(6, tally, seconds)


def nginx_errors(stage: Stage) -> None:
    """What the first node's two nginx layers logged at level error, to explain failures."""
    nginx = stage.root / "nodes" / "node1" / "agent" / "nginx"
    for log in (nginx / "logs" / "error.log", nginx / "switch" / "logs" / "error.log"):
        lines = [line for line in log.read_text().splitlines() if "[error]" in line]
        print(f"{log.relative_to(stage.root)}: {len(lines)} error lines")
        for line in lines[-10:]:
            print(f"  {line}")


def main(concurrency: int, cycles: int, minimum: int, only: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="dy-deploy-bench-") as directory:
        for stage in staged(Path(directory)):
            if only:
                stage.ensure_service(PROJECT, "web")
                list(code_deploy(stage, "web", [stage.nodes[0]["name"]])())
            else:
                scenarios_1_to_4(stage)
            if only in (None, "churn"):
                asyncio.run(scenario_5(stage, concurrency, cycles, minimum))
            if only in (None, "scale"):
                asyncio.run(scenario_6(stage, concurrency, cycles, minimum))
            nginx_errors(stage)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--only-churn", dest="only", action="store_const", const="churn",
                        help="scenario 5 only")
    parser.add_argument("--only-scale", dest="only", action="store_const", const="scale",
                        help="scenario 6 only")
    arguments = parser.parse_args()
    main(arguments.concurrency, arguments.cycles, arguments.requests, arguments.only)
