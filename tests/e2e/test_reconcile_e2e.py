"""The reconciler on a real node of the namespace cluster: a container of the live release
removed behind Dockyard's back and a stray of a failed deployment left running; one pass
(grace period 0) and the node runs exactly the live release again, serving it."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from unittest import mock

import docker
import pytest

from dockyard.core import agents, fleet, reconcile
from dockyard.core.platform import Platform
from dockyard.kernel.settings import Settings
from tests.e2e.stage import EXAMPLE, Stage

pytestmark = pytest.mark.slow
HOST = "hello.converge.localhost"
FAILED = "0badc0de" + "0" * 24
# Up until stopped, and gone at SIGTERM as an app is (`sleep` as PID 1 ignores it: the stop
# waited its whole 10 s before the kill)
STAY = "import signal, time; signal.signal(signal.SIGTERM, lambda *_: exit()); time.sleep(3600)"


def deployed(stage: Stage, node: dict[str, Any]) -> str:
    stage.ensure_service("converge", "hello")
    events = stage.deploy_archive(EXAMPLE, project="converge", service="hello",
                                  server=[node["name"]], grace_seconds=0.5,
                                  health_interval_seconds=0.2)
    assert (events[-1]["kind"], events[-1].get("status")) == ("done", "succeeded"), events[-3:]
    return str(events[-1]["deployment_id"])


def plant_stray(node_docker: docker.APIClient, image: str) -> str:
    name = f"converge-hello-{FAILED[:8]}"
    labels = {"dockyard.managed": "true", "dockyard.service": "converge-hello",
              "dockyard.deployment": FAILED}
    node_docker.create_container(image, name=name, labels=labels, command=["python3", "-c", STAY])
    node_docker.start(name)
    return name


async def one_pass(stage: Stage, node: dict[str, Any]) -> list[str]:
    wanted = {k: v for k, v in stage.env.items() if k.startswith(("DOCKYARD_", "DATABASE_URL"))}
    with mock.patch.dict(os.environ, wanted):
        settings = Settings(reconcile_grace_seconds=0)
    platform = Platform.open(settings)
    try:
        server = next(s for s in await fleet.pollable_servers(platform)
                      if s.name == node["name"])
        secrets = await agents.agent_secrets(platform)
        events = await reconcile.reconcile_server(platform, server,
                                                  agents.client_factory(secrets))
    finally:
        await platform.close()
    return [e.message for e in events]


def test_a_node_broken_behind_dockyards_back_converges(stage: Stage) -> None:
    node = stage.nodes[0]
    live = deployed(stage, node)[:8]
    assert stage.app(node, HOST).json()["release"] == live
    with docker.APIClient(stage.docker_socket(node)) as node_docker:
        container = f"converge-hello-{live}"
        image = node_docker.inspect_container(container)["Config"]["Image"]
        node_docker.remove_container(container, force=True)
        stray = plant_stray(node_docker, image)
        assert stage.app(node, HOST).status_code == 502

        said = asyncio.run(one_pass(stage, node))
        removal = f"removed stray container {stray} of unknown deployment 0badc0de"
        assert removal in said  # the worker's own pass (every 30 s) may have done the rest
        assert stage.app(node, HOST).json()["release"] == live
        running = {c["Names"][0].lstrip("/") for c in node_docker.containers(
            filters={"label": "dockyard.service=converge-hello"})}
    assert running == {container}
    answer = stage.http.get(f"/infra/servers/{node['id']}/events")
    recorded = [e["message"] for e in answer.json()]
    assert {removal, f"re-created missing container {container} (web.1) of live release "
            f"{live}"} <= set(recorded)
