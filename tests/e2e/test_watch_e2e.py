"""App request metrics end to end on the 3-node namespace cluster: the example under a strict
client, redeployed in the middle, its requests read back with `dockyard metrics` (every one
the client saw answered, both releases counted, the redeploy marked) and per server from the
agent's host figures with `dockyard servers health`; the app stopped answering on every server
(its containers paused) raises "down" at a webhook receiver that checks the signature, and
"resolved" once it answers again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import pytest

from tests.alerts.receivers import HttpReceiver, free_port, serving
from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, Stage, Stages
from tests.live import dockyard, ok, wait_until

pytestmark = pytest.mark.slow
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
HOST = "hello.watch.localhost"
# A stage of its own, last in ORDER (one more bring-up): in the shared stage, after the other
# modules, the down alert and the scale-out never came (twice on a full run, never alone;
# not yet understood, see the session note). The traffic watch checks every 5 s.
STAGE_SETTINGS = {"DOCKYARD_TRAFFIC_CHECK_SECONDS": "5"}


@pytest.fixture(scope="module")
def stage(stages: Stages) -> Stage:
    return stages.get(STAGE_SETTINGS)


def metrics(stage: Stage, *by: str) -> dict[str, Any]:
    shown = ok(dockyard("metrics", "-p", "watch", "-s", "hello", "--since", "1h", "--json",
                        *by, env=stage.env))
    found: dict[str, Any] = json.loads(shown)
    return found


def test_requests_reach_dockyard_metrics_with_the_redeploy_marked(stage: Stage) -> None:
    stage.ensure_service("watch", "hello")
    servers = [n["name"] for n in stage.nodes]
    first = stage.deploy_archive(EXAMPLE, project="watch", service="hello", server=servers, **FAST)
    assert first[-1]["status"] == "succeeded", first[-3:]
    second: list[str] = []

    def redeploy() -> None:
        events = stage.deploy_archive(EXAMPLE, project="watch", service="hello", server=servers,
                                      **FAST)
        assert events[-1]["status"] == "succeeded", events[-3:]
        second.append(events[-1]["deployment_id"])

    tally = under_strict_load(stage, HOST, redeploy, concurrency=4)
    assert (tally.failed, tally.errors) == (0, {})
    assert tally.ok > 0

    def counted() -> bool:
        return bool(sum(p["requests"] for p in metrics(stage)["points"]) >= tally.ok)

    wait_until(counted, f"`dockyard metrics` counting the {tally.ok} requests", timeout=120)
    found = metrics(stage)
    assert second[0][:8] in [marker["release"] for marker in found["deploys"]]
    by_release = metrics(stage, "--by", "release")["points"]
    answered = {p["group"] for p in by_release if p["requests"]}
    assert {first[-1]["deployment_id"][:8], second[0][:8]} <= answered
    assert sum(p["status_5xx"] for p in found["points"]) == 0


def test_every_server_reports_its_health(stage: Stage) -> None:
    def reported(name: str) -> bool:
        shown = json.loads(ok(dockyard("servers", "health", name, "--json", env=stage.env)))
        return shown["age_seconds"] is not None and shown["memory_total_bytes"] > 0

    for node in stage.nodes:
        wait_until(lambda name=node["name"]: reported(name),
                   f"{node['name']}'s host figures", timeout=60)


@contextmanager
def paused(stage: Stage, name: str) -> Iterator[None]:
    """Every container of the service paused on every server (they stop answering; nothing
    restarts them), unpaused again after."""
    clients = [docker.DockerClient(base_url=stage.docker_socket(n)) for n in stage.nodes]
    found = [c for client in clients for c in client.containers.list(filters={"name": name})]
    assert found, f"no container named like {name}"
    for container in found:
        container.pause()
    try:
        yield
    finally:
        for container in found:
            container.unpause()
        for client in clients:
            client.close()


def test_an_app_down_everywhere_alerts_once_then_resolves(stage: Stage) -> None:
    receiver = HttpReceiver(free_port())
    added = json.loads(ok(dockyard("notify", "add", "webhook", receiver.url, "--json",
                                   env=stage.env)))
    receiver.secret = added["secret"]

    def sent(state: str) -> list[dict[str, Any]]:
        return [b for b in receiver.bodies
                if b["key"].startswith("service-down:") and b["state"] == state
                and b["subject"].startswith("watch/hello ")]

    with serving(receiver):
        with paused(stage, "watch-hello-"):
            wait_until(lambda: sent("firing"), "the down alert at the receiver", timeout=120)
        wait_until(lambda: sent("resolved"), "the resolved notice", timeout=120)
    assert (len(sent("firing")), receiver.refused) == (1, 0)


def scaled_to(stage: Stage, replicas: int) -> str | None:
    """The deployment the autoscaler started to reach `replicas`, once it succeeded."""
    shown = json.loads(ok(dockyard("autoscale", "decisions", "-p", "watch", "-s", "hello",
                                   "--json", env=stage.env)))
    started = [d["deployment_id"] for d in shown
               if d["to_replicas"] == replicas and d["deployment_id"]]
    done = {d["id"] for d in stage.history("watch", "hello") if d["status"] == "succeeded"}
    return next((found for found in started if found in done), None)


def test_load_scales_web_out_to_max_and_back_in_to_min(stage: Stage) -> None:
    ok(dockyard("autoscale", "set", "-p", "watch", "-s", "hello", "--min", "1", "--max", "2",
                "--target-rps", "5", "--cooldown", "10", env=stage.env))

    def out() -> None:
        wait_until(lambda: scaled_to(stage, 2), "a scale-out to 2 replicas done", timeout=180)

    tally = under_strict_load(stage, HOST, out, concurrency=4)
    assert (tally.failed, tally.errors) == (0, {})
    wait_until(lambda: scaled_to(stage, 1), "the scale-in back to 1 once idle", timeout=300)
    ok(dockyard("autoscale", "off", "-p", "watch", "-s", "hello", env=stage.env))
