"""Deploys ride through agent restarts, end to end on the namespace cluster: the node agent is
SIGKILLed in each step of a deploy and started again a moment later; every deploy ends
succeeded, the node then runs exactly the live release, and a strict client through that
node's nginx sees no failed request across all of it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockyard.agent import process
from dockyard.providers.cluster import Cluster, NodeRecord
from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, Stage, Stages, first_node, tar_gz_of
from tests.live import bring_up, pid_alive, wait_until

pytestmark = pytest.mark.slow
HOST = "phoenix.shop.localhost"
FAST = {"grace_seconds": 1, "health_interval_seconds": 0.2}
WAIT_SECONDS = 15  # this stage's DOCKYARD_AGENT_WAIT_SECONDS (60 by default)
DOWN_SECONDS = 2.0  # how long the agent stays dead: well inside the wait
AWAY_SECONDS = WAIT_SECONDS + 10  # longer than the wait
STAGE_SETTINGS = {"DOCKYARD_AGENT_WAIT_SECONDS": str(WAIT_SECONDS),
                  "DOCKYARD_RECONCILE_SECONDS": "5", "DOCKYARD_RECONCILE_GRACE_SECONDS": "0"}
# (phase or step, state) at which the agent is killed; the build only in a code deploy
MOMENTS = [("build", None), ("pull", "started"), ("start", "started"), ("health", "started"),
           ("switch", "started"), ("stop", "started")]


def restart_agent(cluster: Cluster, node: NodeRecord, down: float = DOWN_SECONDS) -> None:
    """SIGKILL the agent and start it again `down` seconds later, as a service manager
    would."""
    assert node.agent is not None
    pid = node.agent.pid
    os.kill(pid, signal.SIGKILL)
    while process.is_running(pid):
        time.sleep(0.01)
    time.sleep(down)
    cluster.start_agent(node)


def reached(event: dict[str, Any], moment: tuple[str, str | None]) -> bool:
    name, state = moment
    if state is None:
        return event.get("phase") == name
    return event.get("step") == name and event.get("state") == state


def deploy_killing_at(stage: Stage, moment: tuple[str, str | None],
                      down: float = DOWN_SECONDS) -> list[dict[str, Any]]:
    """A deploy (of code when the moment is the build) whose node agent dies at `moment`
    and comes back `down` seconds later."""
    cluster, node = first_node(stage)
    events: Iterator[dict[str, Any]]
    if moment[0] == "build":
        query = {"project": "shop", "service": "phoenix", "server": stage.nodes[0]["name"],
                 **FAST}
        events = stage.stream("/infra/deploy", params=query, content=tar_gz_of(EXAMPLE),
                              headers={"Content-Type": "application/gzip"})
    else:
        events = stage.stream("/infra/deploy", json={
            "project": "shop", "service": "phoenix", "source": {"kind": "release"},
            "params": FAST})
    seen: list[dict[str, Any]] = []
    killer: threading.Thread | None = None
    for event in events:
        seen.append(event)
        if killer is None and reached(event, moment):
            killer = threading.Thread(target=restart_agent, args=(cluster, node, down))
            killer.start()
    assert killer is not None, f"the deploy never reached {moment}"
    killer.join()
    return seen


def server_status(stage: Stage) -> str:
    answer = stage.http.get("/infra/servers")
    assert answer.status_code == 200, answer.text
    [server] = [x for x in answer.json() if x["name"] == stage.nodes[0]["name"]]
    return str(server["status"])


def containers_of(stage: Stage) -> dict[str, str]:
    """The node's containers of the service: name -> state."""
    client = docker.APIClient(base_url=stage.docker_socket(stage.nodes[0]))
    found = client.containers(all=True, filters={"label": "dockyard.service=shop-phoenix"})
    client.close()
    return {c["Names"][0].lstrip("/"): c["State"] for c in found}


@pytest.fixture(scope="module")
def stage(stages: Stages) -> Stage:
    """A stage of its own: it waits WAIT_SECONDS for an agent and reconciles every 5 s."""
    return stages.get(STAGE_SETTINGS)


@pytest.fixture(scope="module")
def phoenix(stage: Stage) -> str:
    stage.ensure_service("shop", "phoenix")
    events = stage.deploy_archive(EXAMPLE, project="shop", service="phoenix",
                                  server=stage.nodes[0]["name"], **FAST)
    assert events[-1]["status"] == "succeeded", events[-3:]
    release: str = events[-1]["deployment_id"]
    return release


def test_a_deploy_survives_the_agent_dying_in_each_of_its_steps(stage: Stage,
                                                                phoenix: str) -> None:
    outcomes: list[tuple[tuple[str, str | None], list[dict[str, Any]]]] = []

    def every_moment() -> None:
        for moment in MOMENTS:
            wait_until(lambda: server_status(stage) == "active",
                       "the server is active again after its agent restarted", timeout=60)
            outcomes.append((moment, deploy_killing_at(stage, moment)))

    tally = under_strict_load(stage, HOST, every_moment, concurrency=32)
    print(f"agent SIGKILLed in {len(MOMENTS)} steps under a strict client (concurrency 32): "
          f"{tally.ok} ok, {tally.failed} failed {tally.errors}")
    waited = [moment[0] for moment, events in outcomes if any(
        e["kind"] == "warning" and "waiting for the node agent" in e["message"] for e in events)]
    print(f"the deploy log said it waited for the agent in: {', '.join(waited)}")
    for moment, events in outcomes:
        assert events[-1]["status"] == "succeeded", (moment, events[-1])
    assert {"build", "pull", "start"} <= set(waited)  # a call was under way: it was waited for
    assert tally.failed == 0, tally.errors
    live = outcomes[-1][1][-1]["deployment_id"]
    assert containers_of(stage) == {f"shop-phoenix-{live[:8]}": "running"}
    assert stage.app(stage.nodes[0], HOST).json()["release"] == live[:8]


def test_an_agent_away_longer_than_the_wait_fails_the_deploy_and_the_node_converges(
        stage: Stage, phoenix: str) -> None:
    wait_until(lambda: server_status(stage) == "active", "the server is active", timeout=60)
    live = stage.app(stage.nodes[0], HOST).json()["release"]
    events: list[list[dict[str, Any]]] = []
    tally = under_strict_load(stage, HOST, lambda: events.append(
        deploy_killing_at(stage, ("start", "started"), down=AWAY_SECONDS)), concurrency=32)
    done = events[0][-1]
    assert done["status"] == "failed"
    assert f"{stage.nodes[0]['name']} (step start): the node agent did not come back" in (
        done["error"])
    assert tally.failed == 0, tally.errors  # nginx kept serving the previous release
    wait_until(lambda: containers_of(stage) == {f"shop-phoenix-{live}": "running"},
               "the reconciler leaves exactly the live release", timeout=60)
    assert stage.app(stage.nodes[0], HOST).json()["release"] == live


def kill_both_when(stage: Stage, params: dict[str, Any],
                   moment: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """A release deploy during which the API and the node's agent are SIGKILLed together at
    `moment`; the agent is back DOWN_SECONDS later, the API after it. The deployment once
    the new API has ended it."""
    cluster, node = first_node(stage)
    events = stage.stream("/infra/deploy", json={
        "project": "shop", "service": "phoenix", "source": {"kind": "release"},
        "params": {**FAST, **params}})
    deployment_id = next(e for e in events if moment(e))["deployment_id"]
    api = int((Path(stage.env["DOCKYARD_DATA_DIR"]) / "api.pid").read_text())
    os.kill(api, signal.SIGKILL)
    restart_agent(cluster, node)
    wait_until(lambda: not pid_alive(api), "the API is gone")
    events.close()
    bring_up(stage.env)
    wait_until(lambda: stage.http.get(f"/infra/deployments/{deployment_id}").json()["status"]
               not in ("queued", "running"), "the interrupted deployment ends", timeout=120)
    result: dict[str, Any] = stage.http.get(f"/infra/deployments/{deployment_id}").json()
    return result


@pytest.mark.parametrize(("moment", "ends"), [
    (lambda e: e.get("step") == "start" and e.get("state") == "done", "failed"),
    (lambda e: e.get("phase") == "commit", "succeeded"),
], ids=["before the switch", "while draining"])
def test_the_control_plane_and_the_agent_killed_together(
        stage: Stage, phoenix: str, moment: Callable[[dict[str, Any]], bool],
        ends: str) -> None:
    wait_until(lambda: server_status(stage) == "active", "the server is active", timeout=60)
    before = stage.app(stage.nodes[0], HOST).json()["release"]
    results: list[dict[str, Any]] = []
    tally = under_strict_load(stage, HOST, lambda: results.append(
        kill_both_when(stage, {"grace_seconds": 5}, moment)), concurrency=32)
    [result] = results
    print(f"API and agent SIGKILLed together ({ends}): {tally.ok} ok, {tally.failed} failed")
    assert result["status"] == ends, result["error"]
    assert tally.failed == 0, tally.errors
    live = before if ends == "failed" else result["id"][:8]
    wait_until(lambda: containers_of(stage) == {f"shop-phoenix-{live}": "running"},
               "the node runs exactly the live release", timeout=60)
    assert stage.app(stage.nodes[0], HOST).json()["release"] == live
