"""Apps written the way their communities write them (examples/: Flask served by gunicorn from
requirements.txt, FastAPI served by uvicorn from pyproject.toml, Express with package-lock.json
and a `start` script), deployed by archive to a node of the namespace cluster with no container
registry reachable: built on the offline bases with their dependencies from the package index
this machine's pip and npm use, reached through the host, which forwards and masquerades the
cluster's subnet. Each answers through the node's nginx; a code change reuses the dependency
layer; the app's own output reaches `dockyard logs`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pip._internal.models.index import PyPI

from dockyard.agent import buildconfig, process
from dockyard.providers import images, netns
from tests.e2e.stage import EXAMPLE, Stage
from tests.live import dockyard, ok, wait_until

pytestmark = pytest.mark.slow
EXAMPLES = EXAMPLE.parent
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}


@dataclass(frozen=True)
class StackApp:
    example: str
    service: str
    base: str  # the offline base the build falls back to
    greeting: str
    code: str  # the file a code change edits
    inferred: str  # what the build log says about the start command
    install: str  # the Dockerfile step that installs the dependencies
    started: str  # a line the app's server prints when it starts

    @property
    def host(self) -> str:
        return f"{self.service}.stacks.localhost"


APPS = [
    StackApp("flask-gunicorn", "flask", "python", "Hello from Flask", "app.py",
             "web command: sh -c exec gunicorn --bind 0.0.0.0:$PORT app:app (inferred: gunicorn "
             "is a dependency and app.py is the entry module)", "pip install -r requirements.txt",
             "Booting worker"),
    StackApp("fastapi-pyproject", "fastapi", "python", "Hello from FastAPI", "main.py",
             "web command: sh -c exec uvicorn main:app --host 0.0.0.0 --port $PORT (inferred: "
             "uvicorn is a dependency (ASGI: FastAPI, Starlette)", '"install", "fastapi==',
             "Uvicorn running on"),
    StackApp("express", "express", "node", "Hello from Express", "server.js",
             "web command: npm start", "npm ci", "listening"),
]


@pytest.fixture(scope="module")
def stack_bases() -> None:
    """The offline python and node bases, cached on this machine (built here at most once)."""
    for recipe in ("python", "node"):
        images.bootstrap_tarball(images.RECIPES[recipe], images.ImageSettings())


def package_index() -> str:
    """The index this machine's pip is configured with, else pip's own default."""
    return buildconfig.machine_config().index_url or PyPI.simple_url


def test_a_node_resolves_and_reaches_the_package_index(stage: Stage) -> None:
    inside = netns.in_netns(stage.nodes[0]["name"])
    index = package_index().rstrip("/")
    resolved = process.run([*inside, "getent", "hosts", urlsplit(index).hostname or ""])
    assert resolved.ok, resolved.output
    answer = process.run([*inside, "curl", "-sS", "--max-time", "30", "-o", "/dev/null",
                          "-w", "%{http_code}", f"{index}/pip/"], timeout=60)
    assert answer.output == "200", answer.output


def messages(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["message"]) for e in events if e["kind"] in ("log", "warning")]


def step_output(lines: list[str], step: str) -> str:
    """What the builder printed for the Dockerfile step whose line contains `step`."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Step ") and step in line)
    rest = lines[start + 1:]
    end = next((i for i, line in enumerate(rest) if line.startswith("Step ")), len(rest))
    return "\n".join(rest[:end])


def deploy(stage: Stage, app: StackApp, node: dict[str, Any], directory: Path) -> list[str]:
    """Deploy `directory` as `app`'s service on `node`; the build's log lines."""
    events = stage.deploy_archive(directory, project="stacks", service=app.service,
                                  server=[node["name"]], **FAST)
    assert events[-1]["status"] == "succeeded", events[-5:]
    return messages(events)


@dataclass(frozen=True)
class ColdBuild:
    node: dict[str, Any]
    source: Path  # a copy of the example
    log: list[str]


def first_deploy(stage: Stage, app: StackApp, node: dict[str, Any], work: Path) -> ColdBuild:
    source = work / app.example
    shutil.copytree(EXAMPLES / app.example, source)
    return ColdBuild(node, source, deploy(stage, app, node, source))


@pytest.fixture(scope="module")
def cold_builds(stage: Stage, stack_bases: None, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[dict[str, Future[ColdBuild]]]:
    """Each app's first deploy, all at once, each to a node of its own (to keep this short)."""
    for app in APPS:
        stage.ensure_service("stacks", app.service)
    with ThreadPoolExecutor(len(APPS)) as pool:
        yield {app.example: pool.submit(first_deploy, stage, app, node,
                                        tmp_path_factory.mktemp(app.service))
               for app, node in zip(APPS, stage.nodes, strict=True)}


def greeting(stage: Stage, app: StackApp, node: dict[str, Any]) -> str:
    answer = stage.app(node, app.host, "/")
    assert answer.status_code == 200, answer.text
    said: str = answer.json()["greeting"]
    return said


def app_output(stage: Stage, app: StackApp) -> list[str]:
    shown = ok(dockyard("logs", "-p", "stacks", "-s", app.service, "--json", "--tail", "200",
                        env=stage.env))
    lines = [json.loads(line)["line"] for line in shown.splitlines()]
    return [line for line in lines if app.started in line]


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.example)
def test_the_app_builds_offline_answers_and_rebuilds_on_its_cached_dependencies(
        stage: Stage, cold_builds: dict[str, Future[ColdBuild]], app: StackApp) -> None:
    built = cold_builds[app.example].result()
    node, source, cold = built.node, built.source, built.log
    assert any(f"building on the offline base dockyard/{app.base}:" in m for m in cold), cold
    assert any(app.inferred in line for line in cold), cold
    assert "Using cache" not in step_output(cold, app.install)
    assert greeting(stage, app, node) == app.greeting
    wait_until(lambda: app_output(stage, app), f"{app.started!r} in `dockyard logs`", 60)

    code = source / app.code
    code.write_text(code.read_text().replace(app.greeting, f"{app.greeting}, changed"))
    warm = deploy(stage, app, node, source)
    assert "Using cache" in step_output(warm, app.install), warm
    assert greeting(stage, app, node) == f"{app.greeting}, changed"
