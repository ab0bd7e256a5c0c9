"""Procfile process types, the release command, scaling and restarts of one type, through the
real engine and agent apps (fake containers, real nginx; see tests/deploy/conftest.py)."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockyard.core import deployments, processes
from dockyard.core.platform import Platform
from dockyard.deploy.runner import DeployRunner
from dockyard.kernel.errors import InvalidInput
from dockyard.models.deploys import DeployTarget
from dockyard.models.enums import Role
from dockyard.models.processes import ScaleRequest
from tests import sqlite_only
from tests.deploy.conftest import AgentNode
from tests.deploy.test_engine import FAST, MakeRunner, everywhere, outcome, serving

database_url = sqlite_only.database_url  # nothing here depends on the database kind

Nodes = dict[str, AgentNode]
PROCFILE = ("web: python3 -m http.server $PORT\nworker: python3 worker.py\n"
            "release: python3 migrate.py\n")


def archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def deploy_code(platform: Platform, runner: DeployRunner, shop: Any,
                      procfile: str = PROCFILE) -> str:
    target = DeployTarget.model_validate({"project": "shop", "service": "web", "params": FAST})
    deployment_id = await deployments.start_archive_deploy(
        platform, runner, shop.actor(Role.OWNER), target,
        chunks(archive({"Procfile": procfile, "worker.py": "", "migrate.py": ""})))
    result = await outcome(platform, runner, shop, deployment_id)
    assert result.status == "succeeded", result.error
    return deployment_id


def kinds(node: AgentNode) -> dict[str, str]:
    """Each running container's process (`web.1`) and the release it belongs to."""
    return {f"{c.config['Labels']['dockyard.process-type']}."
            f"{c.config['Labels']['dockyard.replica']}": c.env["DOCKYARD_RELEASE"]
            for c in node.docker.containers.values() if c.state == "running"}


async def test_every_process_type_runs_and_the_release_command_ran_once(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    release = (await deploy_code(platform, runner, shop))[:8]
    assert {name: kinds(n) for name, n in nodes.items()} == everywhere(
        nodes, {"web.1": release, "worker.1": release})
    assert await serving(nodes) == everywhere(nodes, release)
    ran = [n.docker.one_offs for n in nodes.values()]
    assert ran == [[["sh", "-c", "exec python3 migrate.py"]], [], []]
    worker = next(c for c in nodes["node2"].docker.containers.values()
                  if c.config["Labels"]["dockyard.process-type"] == "worker")
    assert worker.config["Cmd"] == ["sh", "-c", "exec python3 worker.py"]
    assert worker.config["HostConfig"].get("PortBindings") in (None, {})


async def test_a_failing_release_command_fails_the_deploy_before_any_switch(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    old = (await deploy_code(platform, runner, shop))[:8]
    before = {name: n.upstream_ports() for name, n in nodes.items()}
    nodes["node1"].docker.one_off_exit = 3
    target = DeployTarget.model_validate({"project": "shop", "service": "web", "params": FAST})
    deployment_id = await deployments.start_archive_deploy(
        platform, runner, shop.actor(Role.OWNER), target,
        chunks(archive({"Procfile": PROCFILE, "worker.py": "", "migrate.py": ""})))
    result = await outcome(platform, runner, shop, deployment_id)
    assert result.status == "failed"
    assert result.error == ("the release command exited with code 3; the previous release "
                            "keeps serving. Its last output:\nran sh -c exec python3 migrate.py")
    assert await serving(nodes) == everywhere(nodes, old)
    assert {name: n.upstream_ports() for name, n in nodes.items()} == before
    assert {name: set(kinds(n).values()) for name, n in nodes.items()} == everywhere(nodes, {old})


async def test_scaling_adds_web_replicas_to_the_upstream_and_keeps_the_setting(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    await deploy_code(platform, runner, shop)
    owner = shop.actor(Role.OWNER)
    scaled = await processes.start_scale(platform, runner, owner, "shop", "web",
                                         ScaleRequest(scale={"web": 3, "worker": 2}))
    assert (await outcome(platform, runner, shop, scaled)).status == "succeeded"
    release = scaled[:8]
    assert kinds(nodes["node1"]) == {"web.1": release, "web.2": release, "web.3": release,
                                     "worker.1": release, "worker.2": release}
    web_ports = {c.host_port for c in nodes["node1"].docker.containers.values()
                 if c.state == "running" and c.host_port}
    assert len(web_ports) == 3
    assert nodes["node1"].upstream_ports() == web_ports
    assert nodes["node1"].docker.one_offs == [
        ["sh", "-c", "exec python3 migrate.py"]]  # scaling runs no release command

    again = (await deploy_code(platform, runner, shop))[:8]  # a new release keeps the scale
    assert sorted(kinds(nodes["node3"])) == ["web.1", "web.2", "web.3", "worker.1", "worker.2"]
    assert set(kinds(nodes["node3"]).values()) == {again}


async def test_restarting_one_type_leaves_the_others_running(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner) -> None:
    runner = make_runner()
    first = (await deploy_code(platform, runner, shop))[:8]
    before = {name: n.upstream_ports() for name, n in nodes.items()}
    restart = await processes.start_restart(platform, runner, shop.actor(Role.OWNER), "shop",
                                            "web", "worker")
    assert (await outcome(platform, runner, shop, restart)).status == "succeeded"
    assert {name: kinds(n) for name, n in nodes.items()} == everywhere(
        nodes, {"web.1": first, "worker.1": restart[:8]})
    assert {name: n.upstream_ports() for name, n in nodes.items()} == before


@pytest.mark.parametrize(("scale", "says"), [
    ({"clock": 1}, "process type 'clock' is not in the live release (it has web, worker)"),
    ({"web": 0}, "web needs at least 1 replica"),
])
async def test_scaling_what_cannot_be_scaled_is_refused(
        platform: Platform, shop: Any, nodes: Nodes, make_runner: MakeRunner,
        scale: dict[str, int], says: str) -> None:
    runner = make_runner()
    await deploy_code(platform, runner, shop)
    with pytest.raises(InvalidInput, match=re.escape(says)):
        await processes.start_scale(platform, runner, shop.actor(Role.OWNER), "shop", "web",
                                    ScaleRequest(scale=scale))
