"""Booting the fake's droplets for the provisioning tests: each droplet's cloud-config is
parsed (only write_files and runcmd), its files written under a directory of its own, and a
real agent process started with that key, certificate and environment, on an address of its
own on loopback (127.0.0.N, the agent's port 8421). The commands of runcmd are checked, not
run: running them for real is the droplet hosts' job (tests/fakes/droplet_hosts.py). A
snapshot build's droplet reports done through the API's own route."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from tests.agent.conftest import stop_and_wait
from tests.api.test_deploys import closed_port

Json = dict[str, Any]
INFRA = "/api/v1/infra"
# The provisioning tests run on SQLite (their subject is DigitalOcean and the agents); those
# whose queries may differ by database (the sweep's ages and races, a token good once) on both.
BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
PROVISION = f"{INFRA}/servers/provision"
ONE = {"region": "fra1", "size": "s-1vcpu-1gb"}
_addresses = itertools.count(random.randrange(2, 200))


def cloud_config(user_data: str) -> Json:
    assert user_data.startswith("#cloud-config\n")
    document: Json = yaml.safe_load(user_data)
    assert set(document) <= {"write_files", "runcmd"}, document.keys()
    return document


def environment(text: str) -> dict[str, str]:
    """An EnvironmentFile's `NAME="value"` lines (as systemd reads them)."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        found[name] = shlex.split(value)[0] if value else ""
    return found


class Droplets:
    """The fake's boot hook. `agents=False`: droplets boot but no agent ever answers."""

    def __init__(self, root: Path, agents: bool = True) -> None:
        self.root, self.agents = root, agents
        self.booted: dict[int, Json] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.report_done: Callable[[str], None] | None = None

    def __call__(self, droplet: Json, user_data: str) -> str:
        document = cloud_config(user_data)
        self.booted[int(droplet["id"])] = document
        home = self.root / str(droplet["id"])
        for file in document.get("write_files", []):
            target = home / file["path"].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file["content"])
            target.chmod(int(file["permissions"], 8))
        ip = f"127.0.0.{next(_addresses) % 250 + 2}"
        done = [argv[-1] for argv in document["runcmd"] if "POST" in argv]
        if done and self.report_done is not None:
            self.report_done(done[0])
        elif self.agents and (home / "etc/dockyard/agent.env").is_file():
            self._start_agent(home, ip)
        return ip

    def _start_agent(self, home: Path, ip: str) -> None:
        env = environment((home / "etc/dockyard/agent.env").read_text())
        for name in ("PYTHONPATH", "DOCKYARD_AGENT_RELEASES_DIR"):  # this checkout's code
            env.pop(name)
        env.pop("DOCKYARD_AGENT_BLOCK_METADATA")  # this machine's iptables stay untouched
        env.update(DOCKYARD_AGENT_HOST=ip,
                   DOCKYARD_AGENT_STATE_DIR=str(home / "var/lib/dockyard-agent"),
                   DOCKYARD_AGENT_NGINX_HTTP_PORT=str(closed_port()),
                   DOCKYARD_AGENT_NGINX_HTTPS_PORT=str(closed_port()),
                   DOCKYARD_AGENT_SUPERVISE_SECONDS="0",
                   DOCKYARD_AGENT_DOCKER_HOST="unix:///nonexistent/docker.sock",
                   PATH=os.environ["PATH"])
        log = (home / "agent.log").open("wb")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "dockyard.agent.main"], env=env, stdout=log,
            stderr=subprocess.STDOUT))

    def stop(self) -> None:
        """The agents, then the nginx pairs they started (their children outlive them, as
        on a server)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=15)
        for agent_env in self.root.glob("*/etc/dockyard/agent.env"):
            home = agent_env.parents[2]
            pair = Nginx(NginxLayout(home / "var/lib/dockyard-agent/nginx"))
            if pair.running_pids():
                stop_and_wait(pair)
            shutil.rmtree(pair.layout.runtime, ignore_errors=True)


def done_reporter(api: httpx.AsyncClient, loop: asyncio.AbstractEventLoop
                  ) -> Callable[[str], None]:
    """POST a build's done URL to the API under test (from the fake's boot thread)."""
    def report(url: str) -> None:
        path = re.sub(r"^https?://[^/]+", "", url)
        answer = asyncio.run_coroutine_threadsafe(api.post(path), loop).result(timeout=30)
        assert answer.status_code == 204, answer.text

    return report


def events(body: str) -> list[Json]:
    """The JSON data of each Server-Sent Event of a stream."""
    return [json.loads(line.removeprefix("data: ")) for line in body.splitlines()
            if line.startswith("data: ")]


async def provision(client, admin, **body: Any) -> list[Json]:
    answer = await client.post(PROVISION, json={**ONE, **body}, headers=admin.headers,
                               timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    return events(answer.text)


async def servers(client, admin) -> dict[str, Json]:
    answer = await client.get(f"{INFRA}/servers", headers=admin.headers)
    return {server["name"]: server for server in answer.json()}
