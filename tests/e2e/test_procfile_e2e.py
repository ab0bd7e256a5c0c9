"""A Procfile app with `web`, `worker` and `release` end to end on the namespace cluster,
through the CLI: every type runs, the release command runs before the switch (and its
failure keeps the old release), `scale` adds web replicas under a strict client with 0
failures, `restart worker` replaces only the workers, and `logs --type worker` reads them."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, Stage
from tests.live import dockyard, ok, ok_json, wait_until

pytestmark = pytest.mark.slow
APP = Path(__file__).parent / "apps" / "procfile"
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
HOST = "jobs.work.localhost"
SERVICE = ["-p", "work", "-s", "jobs"]
CONCURRENCY = 16


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Procfile app, its web process the hello example's server."""
    directory = tmp_path_factory.mktemp("procfile") / "app"
    shutil.copytree(APP, directory)
    shutil.copy(EXAMPLE / "app.py", directory / "app.py")
    return directory


@pytest.fixture(scope="module")
def live(stage: Stage, source: Path) -> list[dict[str, Any]]:
    """work/jobs deployed to the first two nodes; the deployment's events."""
    stage.ensure_service("work", "jobs")
    events = stage.deploy_archive(source, project="work", service="jobs",
                                  server=[n["name"] for n in stage.nodes[:2]], **FAST)
    assert events[-1]["status"] == "succeeded", events[-3:]
    return events


def processes(stage: Stage) -> list[dict[str, Any]]:
    listing = ok_json(dockyard("ps", *SERVICE, "--json", env=stage.env))
    assert listing["unreachable"] == []
    found: list[dict[str, Any]] = listing["processes"]
    return found


def per_server(stage: Stage) -> dict[str, Counter[str]]:
    """Each server's running processes, by type."""
    found: dict[str, Counter[str]] = {}
    for process in processes(stage):
        if process["state"] == "running":
            found.setdefault(process["server"], Counter())[process["type"]] += 1
    return found


def test_every_process_type_runs_and_the_release_command_ran_before_the_switch(
        stage: Stage, live: list[dict[str, Any]]) -> None:
    release = live[-1]["deployment_id"]
    order = [e.get("phase") or e["message"] for e in live
             if e.get("phase") in ("release", "rollout") or "migrating" in e["message"]]
    assert order == ["release", f"migrating for release {release[:8]}", "rollout"]
    assert per_server(stage) == {n["name"]: Counter(web=1, worker=1) for n in stage.nodes[:2]}
    assert stage.app(stage.nodes[0], HOST).json()["release"] == release[:8]


def test_scaling_web_adds_replicas_with_no_failed_request(
        stage: Stage, live: list[dict[str, Any]]) -> None:
    tally = under_strict_load(stage, HOST, lambda: ok(dockyard(
        "scale", "web=3", "worker=2", *SERVICE, env=stage.env, timeout=300)), CONCURRENCY)
    print(f"scale web 1->3 under a strict client (concurrency {CONCURRENCY}, no retries): "
          f"{tally.ok} ok, {tally.failed} failed {tally.errors}")
    assert tally.failed == 0, tally.errors
    assert tally.ok > 100
    assert per_server(stage) == {n["name"]: Counter(web=3, worker=2) for n in stage.nodes[:2]}
    answered = {stage.app(stage.nodes[0], HOST).json()["hostname"] for _ in range(12)}
    assert len(answered) == 3  # nginx spreads requests over the three web containers


def test_restarting_the_workers_leaves_web_alone(stage: Stage,
                                                  live: list[dict[str, Any]]) -> None:
    before = {p["name"] for p in processes(stage) if p["type"] == "web"}
    ok(dockyard("restart", "worker", *SERVICE, env=stage.env, timeout=300))
    after = processes(stage)
    assert {p["name"] for p in after if p["type"] == "web"} == before
    workers = {p["release"] for p in after if p["type"] == "worker"}
    assert len(workers) == 1
    assert workers != {p["release"] for p in after if p["type"] == "web"}


def test_logs_of_one_process_type(stage: Stage, live: list[dict[str, Any]]) -> None:
    """The workers' output, and the line the agent wrote when `restart worker` stopped the
    old ones (their SIGTERM handler exits 0)."""
    def worker_lines() -> list[dict[str, Any]]:
        result = dockyard("logs", *SERVICE, "--type", "worker", "--json", "--tail", "1000",
                          env=stage.env)
        return [json.loads(line) for line in ok(result).splitlines()]

    def streams() -> set[str]:
        return {line["stream"] for line in worker_lines()}

    wait_until(lambda: {"stdout", "exit"} <= streams(),
               "the workers' lines and exits reach the control plane", timeout=60)
    lines = worker_lines()
    assert {line["process_type"] for line in lines} == {"worker"}
    said = {line["stream"]: line["line"] for line in lines}
    assert said["stdout"].startswith("worker tick worker.")
    assert said["exit"] == "process exited with code 0"


def test_a_failing_release_command_keeps_the_previous_release(
        stage: Stage, live: list[dict[str, Any]]) -> None:
    serving = stage.app(stage.nodes[0], HOST).json()["release"]
    result = dockyard("env", "set", "RELEASE_EXIT=3", *SERVICE, env=stage.env, timeout=300)
    assert result.returncode != 0
    assert "the release command exited with code 3" in result.stdout + result.stderr
    assert stage.app(stage.nodes[0], HOST).json()["release"] == serving
    assert per_server(stage) == {n["name"]: Counter(web=3, worker=2) for n in stage.nodes[:2]}
