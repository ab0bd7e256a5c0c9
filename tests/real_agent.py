"""A real agent app on this machine's Docker, reached over ASGI, whose firewall rules go into
a network namespace of its own (this host's firewall stays as it is)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from dockyard.agent import auth, process
from dockyard.agent.app import build_node
from dockyard.agent.app import create_app as create_agent_app
from dockyard.agent.firewall import Firewall
from dockyard.agent.settings import AgentSettings
from dockyard.providers import netns
from tests.agent.conftest import SECRET


@contextmanager
def firewall_namespace(prefix: str) -> Iterator[str]:
    name = f"{prefix}-{os.getpid()}"
    process.check(netns.add_namespace(name))
    try:
        yield name
    finally:
        process.check(netns.delete_namespace(name))


def agent_on_this_docker(state_dir: Path, docker_host: str, namespace: str
                         ) -> httpx.ASGITransport:
    settings = AgentSettings(state_dir=state_dir, docker_host=docker_host)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    node = build_node(settings)
    node.firewall = Firewall([*netns.in_netns(namespace), "iptables"])
    return httpx.ASGITransport(app=create_agent_app(settings, node))
