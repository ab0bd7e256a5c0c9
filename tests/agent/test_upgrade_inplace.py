"""A real agent process, installed from a release layout, upgrades in place: the same process
(pid) answers with the new version; a release that fails at start is rolled back by the
watchdog, and the old version answers again."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dockyard.agent import auth, process, release, tls
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.agent.release import Bundle, Layout
from tests.agent.conftest import eventually_true, free_port, require_nginx
from tests.agent.test_upgrade import (
    SECRET,
    bundle_of,
    installed_layout,
    package_copy,
    with_extra_file,
)


@dataclass
class ReleasedAgent:
    """An agent run as a provisioned server runs it: the python with PYTHONPATH=current."""

    layout: Layout
    state_dir: Path
    port: int
    child: subprocess.Popen[bytes]
    nginx: Nginx

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def watchdog_log(self) -> Path:
        return self.state_dir / "upgrade-watchdog.log"

    def version(self) -> str | None:
        try:
            answer = httpx.get(f"{self.url}/healthz", verify=False, timeout=2)  # noqa: S501
        except httpx.HTTPError:
            return None
        found: str | None = answer.json().get("version")
        return found

    def client(self) -> NodeAgentClient:
        fingerprint = tls.fingerprint_of_file(tls.CertificateFiles(self.state_dir).certificate)
        return NodeAgentClient(self.url, SECRET, fingerprint=fingerprint)

    def watchdog_said(self) -> str:
        return self.watchdog_log.read_text() if self.watchdog_log.exists() else ""

    def restarted_pid(self) -> int | None:
        text = self.watchdog_said()
        found = re.search(r"agent started again as pid (\d+)", text)
        return int(found.group(1)) if found else None

    def stop(self) -> None:
        """Stop the agent (the one started again by the watchdog too), always its nginx."""
        try:
            for pid in (self.child.pid, self.restarted_pid()):
                if pid is not None and process.is_running(pid):
                    os.kill(pid, signal.SIGTERM)
            self.child.wait(timeout=30)
            restarted = self.restarted_pid()
            if restarted is not None:
                eventually_true(lambda: not process.is_running(restarted), "the agent stopping")
        finally:
            self.nginx.stop()
            shutil.rmtree(self.nginx.layout.runtime, ignore_errors=True)


def agent_env(layout: Layout, state_dir: Path, port: int, http: int, https: int
              ) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(layout.current),
            "DOCKYARD_AGENT_HOST": "127.0.0.1", "DOCKYARD_AGENT_PORT": str(port),
            "DOCKYARD_AGENT_STATE_DIR": str(state_dir),
            "DOCKYARD_AGENT_DOCKER_HOST": f"unix://{state_dir}/no-docker.sock",
            "DOCKYARD_AGENT_NGINX_HTTP_PORT": str(http),
            "DOCKYARD_AGENT_NGINX_HTTPS_PORT": str(https),
            "DOCKYARD_AGENT_SUPERVISE_SECONDS": "0",
            "DOCKYARD_AGENT_RELEASES_DIR": str(layout.home),
            "DOCKYARD_AGENT_UPGRADE_WATCHDOG_SECONDS": "30"}


def start_released_agent(tmp_path: Path, bundle: Bundle | None = None, key: bytes | None = None
                         ) -> ReleasedAgent:
    """An agent running `bundle`'s release (the running code's by default), holding `key`."""
    require_nginx()
    layout, state_dir = installed_layout(tmp_path / "home", bundle), tmp_path / "agent"
    state_dir.mkdir()
    auth.write_key_file(state_dir / "agent.key", key or auth.derive_agent_key(SECRET))
    tls.ensure_certificate(tls.CertificateFiles(state_dir))
    port, http, https = free_port(), free_port(), free_port()
    child = process.spawn([sys.executable, "-m", "dockyard.agent.main"],
                          log_file=state_dir / "agent.log",
                          env=agent_env(layout, state_dir, port, http, https))
    agent = ReleasedAgent(layout, state_dir, port, child,
                          Nginx(NginxLayout(state_dir / "nginx", http, https)))
    eventually_true(lambda: agent.version() is not None or child.poll() is not None,
                    "the agent answering", within=30)
    assert child.poll() is None, (state_dir / "agent.log").read_text()
    return agent


@pytest.fixture
def released_agent(tmp_path: Path) -> Iterator[ReleasedAgent]:
    agent = start_released_agent(tmp_path)
    yield agent
    agent.stop()


def failing_at_start(copy: Path) -> None:
    main = copy / "agent" / "main.py"
    main.write_text(main.read_text().replace(
        "def serve() -> None:\n",
        "def serve() -> None:\n    raise RuntimeError('this release fails at start')\n", 1))


async def test_the_same_process_answers_with_the_new_version(
        released_agent: ReleasedAgent, tmp_path: Path) -> None:
    bundle = bundle_of(tmp_path, "good", with_extra_file("extra"))
    assert released_agent.version() == release.code_version()
    nginx = released_agent.nginx
    workers = {layer: layer.workers() for layer in nginx.instances}
    assert all(workers.values())
    async with released_agent.client() as client:
        accepted = await client.upgrade_agent(bundle)
        assert accepted.version == bundle.version
        eventually_true(lambda: released_agent.version() == bundle.version,
                        "the new version answering", within=60)
        assert (await client.info()).agent_version == bundle.version
    assert released_agent.child.poll() is None  # the pid the agent was started with
    assert {layer: layer.workers() for layer in nginx.instances} == workers  # not reloaded
    eventually_true(lambda: "upgrade kept" in released_agent.watchdog_said(),
                    "the watchdog keeping the upgrade", within=30)
    assert released_agent.restarted_pid() is None


async def test_a_release_that_fails_at_start_is_rolled_back_by_the_watchdog(
        released_agent: ReleasedAgent, tmp_path: Path) -> None:
    old = release.code_version()
    bad = bundle_of(tmp_path, "bad", failing_at_start)
    layout = released_agent.layout
    async with released_agent.client() as client:
        await client.upgrade_agent(bad)
    eventually_true(lambda: released_agent.restarted_pid() is not None,
                    "the watchdog starting the agent again", within=60)
    eventually_true(lambda: released_agent.version() == old, "the old version answering", 60)
    assert released_agent.child.poll() == 1  # the upgraded process failed at start
    assert release.link_target(layout.current) == layout.release(old).resolve()
    assert release.link_target(layout.previous) == layout.release(bad.version).resolve()
    assert "this release fails at start" in (released_agent.state_dir / "agent.log").read_text()


def test_package_copy_is_importable(tmp_path: Path) -> None:
    assert (package_copy(tmp_path, lambda copy: None) / "agent" / "main.py").exists()


# systemd's part, played by a restart loop (Restart=always, RestartSec=0.2): the agent's
# environment has INVOCATION_ID, so its watchdog leaves restarting to the loop.
RESTART_LOOP = """
import signal, subprocess, sys, time
stopping, child = [], None
def stop(*_):
    stopping.append(True)
    if child is not None:
        child.terminate()
signal.signal(signal.SIGTERM, stop)
while not stopping:
    child = subprocess.Popen(sys.argv[1:])
    child.wait()
    time.sleep(0 if stopping else 0.2)
"""


async def test_under_systemd_the_watchdog_flips_back_and_systemd_restarts_the_old_release(
        tmp_path: Path) -> None:
    require_nginx()
    layout, state_dir = installed_layout(tmp_path / "home"), tmp_path / "agent"
    state_dir.mkdir()
    auth.write_key_file(state_dir / "agent.key", auth.derive_agent_key(SECRET))
    tls.ensure_certificate(tls.CertificateFiles(state_dir))
    port, http, https = free_port(), free_port(), free_port()
    env = {**agent_env(layout, state_dir, port, http, https), "INVOCATION_ID": "0" * 32,
           "DOCKYARD_AGENT_UPGRADE_WATCHDOG_SECONDS": "5"}
    loop = process.spawn([sys.executable, "-c", RESTART_LOOP, sys.executable, "-m",
                          "dockyard.agent.main"], log_file=state_dir / "agent.log", env=env)
    agent = ReleasedAgent(layout, state_dir, port, loop,
                          Nginx(NginxLayout(state_dir / "nginx", http, https)))
    try:
        eventually_true(lambda: agent.version() is not None, "the agent answering", within=30)
        bad = bundle_of(tmp_path, "bad", failing_at_start)
        async with agent.client() as client:
            await client.upgrade_agent(bad)
        eventually_true(lambda: "rolling back" in agent.watchdog_said(),
                        "the watchdog rolling back", within=60)
        eventually_true(lambda: agent.version() == release.code_version(),
                        "the old version answering", within=60)
        assert release.link_target(layout.current) == layout.release(
            release.code_version()).resolve()
        assert agent.restarted_pid() is None  # systemd's part, not the watchdog's
        assert loop.poll() is None
    finally:
        agent.stop()
