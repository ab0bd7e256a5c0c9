"""`dockyard install` under a real systemd: PID 1 of a container (Debian with systemd, from
the offline base), Dockyard mounted from this checkout. The API answers, comes back by itself
after a SIGKILL and after a reboot (the container restarted), and `uninstall` removes it."""

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
    """The offline base plus Debian's systemd (a cached layer after the first build)."""
    engine = docker.APIClient()
    path, suite = base_tarball.path, base_tarball.suite
    engine.import_image_from_file(str(path), repository=f"{SYSTEMD_IMAGE}-base", tag=suite)
    recipe = (f"FROM {SYSTEMD_IMAGE}-base:{suite}\nRUN apt-get update -qq && "
              "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              "systemd systemd-sysv\n")
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


def _api(machine: Container) -> str:
    machine.reload()
    return f"http://{machine.attrs['NetworkSettings']['IPAddress']}:8420"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _main_pid(machine: Container) -> int:
    return int(_run(machine, "systemctl", "show", "-p", "MainPID", "--value",
                    "dockyard-api.service"))


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
