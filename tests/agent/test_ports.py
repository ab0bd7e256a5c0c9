"""Host ports the agent chooses (`host_port` 0), kept in its desired state, and the ports
Docker reports as published."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dockyard.agent import ports
from dockyard.agent.commands import EngineCall
from dockyard.agent.models import ContainerSpec, PortBinding, PublishedPort
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.node import Node, summarize_container
from dockyard.agent.proxy import Nginx
from dockyard.agent.runtime import DockerRuntime, EngineError
from dockyard.agent.state import StateFile

SPEC = ContainerSpec.model_validate({
    "name": "web-1", "service": "web", "image": {"repository": "shop/web"},
    "ports": [{"container_port": 8000, "host_port": 0, "host_ip": "127.0.0.1"},
              {"container_port": 8001, "host_port": 0, "host_ip": "127.0.0.1"},
              {"container_port": 9000, "host_port": 18000, "host_ip": "127.0.0.1"}]})


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_docker_published_ports_are_summarized_and_unpublished_ones_left_out() -> None:
    raw = {"Id": "c0ffee", "Names": ["/web-1"], "Image": "shop/web", "State": "running",
           "Status": "Up", "Labels": {"dockyard.service": "web"}, "Ports": [
               {"IP": "::", "PrivatePort": 8000, "PublicPort": 32768, "Type": "tcp"},
               {"PrivatePort": 9000, "Type": "tcp"},
               {"IP": "10.0.0.5", "PrivatePort": 8000, "PublicPort": 32768, "Type": "tcp"}]}
    assert summarize_container(raw).ports == [
        PublishedPort(container_port=8000, host_port=32768, host_ip="10.0.0.5"),
        PublishedPort(container_port=8000, host_port=32768, host_ip="::")]
    assert summarize_container({**raw, "Ports": None}).ports == []


def test_host_port_zero_is_accepted_and_a_negative_one_refused() -> None:
    assert PortBinding(container_port=80, host_port=0).host_port == 0
    with pytest.raises(ValidationError):
        PortBinding(container_port=80, host_port=-1)


def test_every_zero_becomes_a_distinct_free_port_and_the_rest_stays() -> None:
    chosen = ports.with_free_ports(SPEC, taken=set())
    first, second, fixed = (binding.host_port for binding in chosen.ports)
    assert fixed == 18000
    assert first != second
    assert 0 not in (first, second)
    assert bindable(first)
    assert bindable(second)
    assert chosen.model_copy(update={"ports": SPEC.ports}) == SPEC
    concrete = SPEC.model_copy(update={"ports": SPEC.ports[2:]})
    assert ports.with_free_ports(concrete, taken=set()) is concrete


def test_ports_the_desired_state_assigns_are_not_chosen_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offered = iter([40000, 40001, 40002, 40000, 40003])
    monkeypatch.setattr(ports, "_bound", lambda stack, binding: next(offered))
    chosen = ports.with_free_ports(SPEC, taken={40000, 40001})
    assert [binding.host_port for binding in chosen.ports] == [40002, 40003, 18000]
    assert ports.taken_ports([chosen]) == {40002, 40003, 18000}


class FakeDocker(DockerRuntime):
    """Records the calls; answers the container list with the ports of the last create."""

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__("unix:///nonexistent.sock")
        self.calls: list[EngineCall] = []
        self.refuse = refuse

    async def run(self, call: EngineCall) -> Any:
        self.calls.append(call)
        if call.method == self.refuse:
            raise EngineError("refused", 404 if call.method == "inspect_container" else 409)
        if call.method == "containers":
            return [{"Id": "c0ffee", "Names": ["/web-1"], "Ports": [
                {"IP": "127.0.0.1", "PrivatePort": int(port.split("/")[0]),
                 "PublicPort": int(bound[0]["HostPort"]), "Type": "tcp"}
                for port, bound in self.bindings().items()]}]
        return None

    async def run_all(self, calls: Iterable[EngineCall]) -> list[Any]:
        return [await self.run(call) for call in calls]

    def bindings(self) -> dict[str, Any]:
        creates = [c for c in self.calls if c.method == "create_container_from_config"]
        return dict(creates[-1].kwargs["config"]["HostConfig"]["PortBindings"])


def node_with(docker: DockerRuntime, state_dir: Path) -> Node:
    return Node(state_dir=state_dir, certs_dir=state_dir / "certs", runtime=docker,
                nginx=Nginx(NginxLayout(state_dir / "nginx")),
                state_file=StateFile(state_dir / "desired-state.json"))


async def test_the_chosen_ports_are_created_kept_and_reused_by_a_restore(tmp_path: Path) -> None:
    docker = FakeDocker()
    summary = await node_with(docker, tmp_path).run_container(SPEC)
    kept = StateFile(tmp_path / "desired-state.json").load().containers["web-1"]
    assert 0 not in [binding.host_port for binding in kept.ports]
    assert docker.bindings() == {
        f"{b.container_port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(b.host_port)}]
        for b in kept.ports}
    assert sorted(p.host_port for p in summary.ports) == sorted(b.host_port for b in kept.ports)
    after_reboot = FakeDocker(refuse="inspect_container")
    await node_with(after_reboot, tmp_path)._restore_container(kept)
    assert after_reboot.bindings() == docker.bindings()


async def test_a_container_docker_refuses_is_not_kept(tmp_path: Path) -> None:
    node = node_with(FakeDocker(refuse="create_container_from_config"), tmp_path)
    with pytest.raises(EngineError):
        await node.run_container(SPEC)
    assert StateFile(tmp_path / "desired-state.json").load().containers == {}
