"""Host ports the agent chooses: a binding with `host_port` 0 gets a port free right now."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from contextlib import ExitStack

from dockyard.agent.models import ContainerSpec, PortBinding

ATTEMPTS = 20


def _bound(stack: ExitStack, binding: PortBinding) -> int:
    """Bind a socket to port 0 of the binding's address and protocol; it stays open in
    `stack`, so the bindings of one spec never get the same port."""
    family = socket.AF_INET6 if ":" in binding.host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if binding.protocol == "udp" else socket.SOCK_STREAM
    probe = stack.enter_context(socket.socket(family, kind))
    probe.bind((binding.host_ip, 0))
    port: int = probe.getsockname()[1]
    return port


def _free_port(stack: ExitStack, binding: PortBinding, taken: set[int]) -> int:
    for _ in range(ATTEMPTS):
        port = _bound(stack, binding)
        if port not in taken:
            return port
    raise OSError(f"no free port on {binding.host_ip} outside those already assigned")


def taken_ports(specs: Iterable[ContainerSpec]) -> set[int]:
    """Ports the desired state assigns already, bound now or not (a stopped container's)."""
    return {binding.host_port for spec in specs for binding in spec.ports}


def with_free_ports(spec: ContainerSpec, taken: set[int]) -> ContainerSpec:
    """`spec` with each host port 0 replaced by a free port not in `taken`."""
    if all(binding.host_port for binding in spec.ports):
        return spec
    with ExitStack() as stack:
        ports = [binding if binding.host_port else binding.model_copy(
                     update={"host_port": _free_port(stack, binding, taken)})
                 for binding in spec.ports]
    return spec.model_copy(update={"ports": ports})


def same_request(requested: ContainerSpec, kept: ContainerSpec) -> bool:
    """Whether `requested` asks for the container `kept` describes: equal but for the host
    ports the agent chose where the request left them to it (0)."""
    if len(requested.ports) != len(kept.ports):
        return False
    chosen = [k if r.host_port == 0 else r for r, k in zip(requested.ports, kept.ports,
                                                           strict=True)]
    return requested.model_copy(update={"ports": chosen}) == kept
