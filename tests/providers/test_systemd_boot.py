"""`dockyard install` under a real systemd: PID 1 of a container (Debian with systemd, from
the offline base), Dockyard mounted from this checkout. The API, and the agent with the
registry, answer, come back by themselves after a SIGKILL and after a reboot (the container
restarted), the agent's nginx serving throughout; `uninstall` removes them."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from docker.models.containers import Container

from dockyard.providers.images import Tarball
from tests.agent.conftest import base_tarball
from tests.live import wait_until

pytestmark = pytest.mark.slow
__all__ = ["base_tarball"]
REPOSITORY = Path(__file__).resolve().parents[2]
PYTHON_HOME = Path(os.path.realpath(sys.base_prefix))
DOCKYARD = f"{sys.prefix}/bin/dockyard"
SYSTEMD_IMAGE = "dockyard-test/systemd"
# The API listens on the container's address, so that this machine reaches it.
SETTINGS = {"DOCKYARD_DATA_DIR": "/var/lib/dockyard", "DOCKYARD_HOST": "0.0.0.0"}  # noqa: S104


@pytest.fixture(scope="module")
def systemd_image(base_tarball: Tarball) -> str:
    """The offline base plus Debian's systemd, nginx and docker-registry (a cached layer
    after the first build)."""
    engine = docker.APIClient()
    path, suite = base_tarball.path, base_tarball.suite
    engine.import_image_from_file(str(path), repository=f"{SYSTEMD_IMAGE}-base", tag=suite)
    recipe = (f"FROM {SYSTEMD_IMAGE}-base:{suite}\nRUN apt-get update -qq && "
              "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              "systemd systemd-sysv nginx docker-registry\n")
    tag = f"{SYSTEMD_IMAGE}:{suite}"
    for _ in engine.build(fileobj=io.BytesIO(recipe.encode()), tag=tag, rm=True, decode=True):
        pass
    return tag


def _mounts() -> dict[str, dict[str, str]]:
    """This checkout (and its .venv) and the Python the venv was made from, read-only, at
    the same paths; Debian's own Python is already in the image."""
    mounts = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"},
              str(REPOSITORY): {"bind": str(REPOSITORY), "mode": "ro"}}
    if not PYTHON_HOME.is_relative_to("/usr"):
        mounts[str(PYTHON_HOME)] = {"bind": str(PYTHON_HOME), "mode": "ro"}
    return mounts


def _exec(machine: Container, *argv: str) -> tuple[int, str]:
    code, output = machine.exec_run(list(argv), environment=SETTINGS)
    assert isinstance(output, bytes)
    assert code is not None
    return code, output.decode(errors="replace")


def _run(machine: Container, *argv: str) -> str:
    code, text = _exec(machine, *argv)
    assert code == 0, f"{argv} -> {code}: {text}"
    return text


def _booted(machine: Container) -> bool:
    return _exec(machine, "systemctl", "is-system-running")[1].strip() in ("running", "degraded")


@pytest.fixture
def machine(systemd_image: str) -> Iterator[Container]:
    started = docker.from_env().containers.run(
        systemd_image, ["/lib/systemd/systemd"], detach=True, volumes=_mounts(),
        tmpfs={"/run": "", "/run/lock": ""}, environment={"container": "docker"},
        stop_signal="SIGRTMIN+3")  # systemd's own shutdown: it stops every unit first
    try:
        wait_until(lambda: _booted(started), "systemd in the container has booted", 60)
        yield started
    finally:
        started.remove(force=True)


def _address(machine: Container) -> str:
    machine.reload()
    return str(machine.attrs["NetworkSettings"]["IPAddress"])


def _api(machine: Container) -> str:
    return f"http://{_address(machine)}:8420"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _main_pid(machine: Container, unit: str = "dockyard-api.service") -> int:
    return int(_run(machine, "systemctl", "show", "-p", "MainPID", "--value", unit))


def test_installed_under_systemd_the_api_survives_a_kill_and_a_reboot(
    machine: Container,
) -> None:
    installed = _run(machine, DOCKYARD, "install", "--control-plane")
    assert installed.startswith("Installed, enabled and started: dockyard-api.service, "
                                "dockyard-worker.service")
    url = _api(machine)
    wait_until(lambda: _answers(url), "the API answers", 60)

    killed = _main_pid(machine)
    _run(machine, sys.executable, "-c", f"import os; os.kill({killed}, 9)")
    wait_until(lambda: _main_pid(machine) not in (0, killed) and _answers(url),
               "systemd restarted the API", 60)
    assert _run(machine, "systemctl", "show", "-p", "NRestarts", "--value",
                "dockyard-api.service").strip() == "1"

    machine.restart(timeout=60)  # a clean reboot: systemd stops the units, then boots
    url = _api(machine)
    wait_until(lambda: _answers(url), "the API answers after a reboot", 90)
    assert _run(machine, "systemctl", "is-active", "dockyard-api.service",
                "dockyard-worker.service").split() == ["active", "active"]

    _run(machine, DOCKYARD, "uninstall")
    assert not _answers(url)
    assert _run(machine, "ls", "/etc/dockyard").strip() == ""
    assert _exec(machine, "systemctl", "cat", "dockyard-api.service")[0] != 0


AGENT_STATE = Path(SETTINGS["DOCKYARD_DATA_DIR"]) / "local-agent"
IN_THE_MACHINE = {
    "key": "from dockyard.agent import auth; auth.write_key_file(Path(sys.argv[1]) / "
           "'agent.key', auth.derive_agent_key('workspace-secret'))",
    "agent answers": "from dockyard.providers.local import agent_answers; "
                     "sys.exit(0 if agent_answers('https://127.0.0.1:8421') else 1)",
    "registry answers": "from dockyard.providers.registry import answers; "
                        "sys.exit(0 if answers('127.0.0.1:5001') else 1)",
    "edge pid": "from dockyard.agent.nginx import NginxLayout; from dockyard.agent.proxy "
                "import Nginx; print(Nginx(NginxLayout(Path(sys.argv[1]) / 'nginx', 80))"
                ".edge.running_pid())",
}


def _python(machine: Container, what: str) -> tuple[int, str]:
    script = f"import sys; from pathlib import Path; {IN_THE_MACHINE[what]}"
    return _exec(machine, sys.executable, "-c", script, str(AGENT_STATE))


def _edge_answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/", timeout=2).status_code == 404  # no site yet
    except httpx.HTTPError:
        return False


def test_installed_under_systemd_the_node_comes_back_and_its_nginx_serves_throughout(
    machine: Container,
) -> None:
    assert _python(machine, "key")[0] == 0
    # Debian's own docker-registry service has 5000: this one gets a unit of Dockyard's.
    node = {"DOCKYARD_REGISTRY": "127.0.0.1:5001"}
    refused = machine.exec_run([DOCKYARD, "install", "--node"], environment={**SETTINGS, **node})
    assert refused.exit_code == 1  # Debian started its own nginx on port 80 with the package
    assert b"0.0.0.0:80 (for the agent's nginx)" in refused.output, refused.output
    _run(machine, "systemctl", "disable", "--now", "nginx.service")
    code, installed = machine.exec_run([DOCKYARD, "install", "--node"],
                                       environment={**SETTINGS, **node})
    assert code == 0, installed
    assert b"dockyard-agent.service, dockyard-registry.service" in installed, installed
    wait_until(lambda: _python(machine, "agent answers")[0] == 0, "the agent answers", 60)
    wait_until(lambda: _python(machine, "registry answers")[0] == 0, "the registry answers")
    address = _address(machine)
    wait_until(lambda: _edge_answers(address), "the agent's edge nginx answers", 30)
    edge = _python(machine, "edge pid")[1].strip()

    killed = _main_pid(machine, "dockyard-agent.service")
    _run(machine, sys.executable, "-c", f"import os; os.kill({killed}, 9)")
    assert _edge_answers(address), "nginx went down with the agent"
    wait_until(lambda: _main_pid(machine, "dockyard-agent.service") not in (0, killed)
               and _python(machine, "agent answers")[0] == 0, "systemd restarted the agent", 60)
    assert _python(machine, "edge pid")[1].strip() == edge  # the same nginx, taken over

    machine.restart(timeout=60)
    address = _address(machine)
    wait_until(lambda: _python(machine, "agent answers")[0] == 0 and _edge_answers(address)
               and _python(machine, "registry answers")[0] == 0,
               "the agent, its nginx and the registry answer after a reboot", 90)
