"""ps, run and restart end to end on a 3-node namespace cluster, through the CLI: the example
app deployed to every node, its processes listed, a one-off command with the service's
variables and its exit code, and a rolling restart under a strict client with 0 failures."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import docker
import pytest

from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, Stage
from tests.live import DOCKYARD, dockyard, ok, ok_json, wait_until

pytestmark = pytest.mark.slow
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
HOST = "hello.procs.localhost"
SERVICE = ["-p", "procs", "-s", "hello"]
CONCURRENCY = 16


@pytest.fixture(scope="module")
def live(stage: Stage) -> str:
    """procs/hello with X set, deployed to every node; its release id."""
    stage.ensure_service("procs", "hello")
    answer = stage.http.put("/projects/procs/services/hello/env/X", json={"value": "from-env"})
    assert answer.status_code == 200, answer.text
    events = stage.deploy_archive(EXAMPLE, project="procs", service="hello",
                                  server=[n["name"] for n in stage.nodes], **FAST)
    assert events[-1]["status"] == "succeeded", events[-3:]
    release: str = events[-1]["deployment_id"]
    return release


def processes(stage: Stage) -> list[dict[str, Any]]:
    listing = ok_json(dockyard("ps", *SERVICE, "--json", env=stage.env))
    assert listing["unreachable"] == []
    found: list[dict[str, Any]] = listing["processes"]
    return found


def test_ps_shows_the_web_process_on_every_server(stage: Stage, live: str) -> None:
    found = processes(stage)
    assert sorted(p["server"] for p in found) == sorted(n["name"] for n in stage.nodes)
    for process in found:
        assert (process["type"], process["replica"], process["release"]) == ("web", 1, live)
        assert (process["state"], process["exit_code"]) == ("running", None)
        assert process["memory_bytes"] > 0
    table = ok(dockyard("ps", *SERVICE, env={**stage.env, "COLUMNS": "80"}))
    assert live[:8] in table
    assert all(len(line) <= 80 for line in table.splitlines())


def one_offs(stage: Stage) -> list[Any]:
    found = []
    for node in stage.nodes:
        client = docker.APIClient(base_url=stage.docker_socket(node))
        found += client.containers(all=True, filters={"label": "dockyard.one-off=true"})
        client.close()
    return found


def test_run_has_the_services_variables_returns_the_exit_code_and_leaves_nothing(
        stage: Stage, live: str) -> None:
    code = "import os; print(os.environ['X'], os.environ['DOCKYARD_RELEASE']); raise SystemExit(3)"
    result = dockyard("run", *SERVICE, "--server", stage.nodes[1]["name"], "--",
                      "python3", "-c", code, env=stage.env)
    assert result.returncode == 3, result.stderr
    assert result.stdout == f"from-env {live[:8]}\n"
    assert one_offs(stage) == []


def test_restart_rolls_out_the_live_release_again_with_no_failed_request(
        stage: Stage, live: str) -> None:
    outputs: list[str] = []
    tally = under_strict_load(stage, HOST, lambda: outputs.append(
        ok(dockyard("restart", *SERVICE, env=stage.env, timeout=300))), CONCURRENCY)
    [output] = outputs
    print(f"restart under a strict client (concurrency {CONCURRENCY}, no retries): "
          f"{tally.ok} ok, {tally.failed} failed {tally.errors}")
    assert "Deployed procs/hello" in output
    assert tally.failed == 0, tally.errors
    assert tally.ok > 100
    releases = {p["release"] for p in processes(stage)}
    assert len(releases) == 1
    assert releases != {live}


def test_a_killed_process_is_restarted_by_docker_and_ps_records_the_crash(
        stage: Stage, live: str) -> None:
    node = stage.nodes[2]
    client = docker.APIClient(base_url=stage.docker_socket(node))
    [container] = client.containers(filters={"label": "dockyard.service=procs-hello"})
    os.kill(client.inspect_container(container["Id"])["State"]["Pid"], signal.SIGKILL)
    client.close()

    def restarted() -> bool:
        [mine] = [p for p in processes(stage) if p["server"] == node["name"]]
        return bool(mine["restarts"] >= 1 and mine["state"] == "running")

    wait_until(restarted, "Docker restarts the killed container", timeout=60)
    [mine] = [p for p in processes(stage) if p["server"] == node["name"]]
    assert (mine["exit_code"], mine["oom_killed"]) == (137, False)
    answer = stage.app(node, HOST)
    assert answer.status_code == 200, answer.text


def test_a_run_whose_client_goes_away_leaves_no_container(stage: Stage, live: str) -> None:
    code = "import time; print('up', flush=True); time.sleep(300)"
    command = subprocess.Popen([DOCKYARD, "run", *SERVICE, "--", "python3", "-c", code],
                               env=stage.env, stdout=subprocess.PIPE, text=True)
    assert command.stdout is not None
    assert command.stdout.readline() == "up\n"
    assert len(one_offs(stage)) == 1
    command.kill()
    command.wait()
    wait_until(lambda: one_offs(stage) == [], "the one-off container is removed", timeout=30)
