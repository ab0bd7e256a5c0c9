"""The commands the units carry, run as systemd would run them (their environment file, their
working directory, SIGTERM to the main process): the API answers /healthz, the worker runs,
the registry and the agent answer, each exits cleanly within its TimeoutStopSec, and the
agent's nginx outlives it (its unit stops only the agent: KillMode=process)."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.core import install
from dockyard.core.local_node import launch_of
from dockyard.kernel.settings import Settings
from dockyard.providers import local, registry
from tests.live import wait_until
from tests.pg import free_port

pytestmark = pytest.mark.slow
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLEAN_EXITS = (0, -signal.SIGTERM)  # what systemd counts as a clean stop by default


@dataclass(frozen=True)
class Service:
    """A unit's [Service] settings, parsed back from its text."""

    pre: list[list[str]]
    start: list[str]
    directory: Path
    environment: dict[str, str]
    stop_timeout: float


def _words(line: str) -> list[str]:
    return shlex.split(line.replace("%%", "%").replace("$$", "$"))


def _service(unit_text: str, files: dict[Path, str]) -> Service:
    settings = [line.split("=", 1) for line in unit_text.splitlines() if "=" in line]
    value = dict(settings)
    environment_text = files[Path(value["EnvironmentFile"])] if "EnvironmentFile" in value else ""
    environment = dict(_words(line)[0].split("=", 1) for line in environment_text.splitlines())
    return Service([_words(v) for k, v in settings if k == "ExecStartPre"],
                   _words(value["ExecStart"]), Path(value["WorkingDirectory"]),
                   environment, float(value["TimeoutStopSec"]))


@pytest.fixture
def base() -> Iterator[Path]:
    """Short (nginx's unix sockets) and enterable by nginx workers running as nobody."""
    made = Path(tempfile.mkdtemp(prefix="dy-sd-", dir="/var/tmp"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made, ignore_errors=True)


def _plan(base: Path) -> tuple[dict[str, Service], Settings]:
    environ = {"DOCKYARD_DATA_DIR": str(base / "data"), "DOCKYARD_PORT": str(free_port()),
               "DOCKYARD_LOCAL_AGENT_PORT": str(free_port()),
               "DOCKYARD_LOCAL_HTTP_PORT": str(free_port()),
               "DOCKYARD_LOCAL_HTTPS_PORT": str(free_port()),
               "DOCKYARD_REGISTRY": f"127.0.0.1:{free_port()}", "DOCKYARD_LOG_JSON": "true"}
    settings = Settings.model_validate({"data_dir": base / "data", **{
        "port": environ["DOCKYARD_PORT"], "registry": environ["DOCKYARD_REGISTRY"],
        "local_agent_port": environ["DOCKYARD_LOCAL_AGENT_PORT"],
        "local_http_port": environ["DOCKYARD_LOCAL_HTTP_PORT"],
        "local_https_port": environ["DOCKYARD_LOCAL_HTTPS_PORT"]}})
    local.install_agent_key(launch_of(settings), "workspace-secret")
    machine = install.Machine(settings, Path(sys.executable), environ)
    plan = install.plan_install(machine, install.Roles(control_plane=True, node=True))
    files = {file.path: file.text for file in plan.files}
    for directory in plan.directories:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for file in plan.files:  # the registry's configuration; units and /etc stay in memory
        if file.path.is_relative_to(base):
            file.path.parent.mkdir(parents=True, exist_ok=True)
            file.path.write_text(file.text)
    units = {name: _service(files[Path("/etc/systemd/system") / name], files)
             for name in install.unit_names(plan)}
    return units, settings


def _start(service: Service, log: Path) -> subprocess.Popen[bytes]:
    environment = {"PATH": SYSTEMD_PATH, **service.environment}
    for argv in service.pre:
        subprocess.run(argv, env=environment, cwd=service.directory, check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
    with log.open("ab") as out:
        return subprocess.Popen(service.start, env=environment, cwd=service.directory,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_like_systemd(child: subprocess.Popen[bytes], service: Service, log: Path) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=service.stop_timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail(f"{service.start} did not stop within {service.stop_timeout:.0f} s of "
                    f"SIGTERM:\n{log.read_text()[-2000:]}")
    assert child.returncode in CLEAN_EXITS, log.read_text()[-2000:]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_units_commands_serve_and_stop_cleanly_on_sigterm(base: Path) -> None:
    units, settings = _plan(base)
    assert sorted(units) == ["dockyard-agent.service", "dockyard-api.service",
                             "dockyard-registry.service", "dockyard-worker.service"]
    launch = launch_of(settings)
    nginx = Nginx(NginxLayout(launch.state_dir / "nginx", launch.nginx_http_port))
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, service in units.items():
            started[name] = _start(service, base / f"{name}.log")
        wait_until(lambda: _answers(f"{settings.api_url}/healthz"), "the API answers /healthz")
        wait_until(lambda: registry.answers(settings.registry), "the registry answers")
        wait_until(lambda: local.agent_answers(launch.url), "the agent answers", timeout=60)
        for name, child in started.items():
            assert child.poll() is None, (base / f"{name}.log").read_text()[-2000:]
        for name in list(started):
            _stop_like_systemd(started.pop(name), units[name], base / f"{name}.log")
        assert nginx.running_pids(), "the agent's nginx stops with it (KillMode=process)"
    finally:
        for child in started.values():
            child.kill()
        nginx.stop()
