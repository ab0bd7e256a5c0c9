"""The platform's own image registry on this machine, for `dockyard up --local-node`."""

from __future__ import annotations

from pathlib import Path

import httpx

from dockyard.agent import process
from dockyard.providers import local, netns
from dockyard.providers.cluster import registry_config

PROGRAM = "docker-registry"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/v2/", timeout=2).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def ensure_registry(address: str, root: Path) -> bool:
    """Start a registry at `address` (a loopback one) unless one answers; True if started."""
    if answers(address):
        return False
    if address.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
        raise local.NotReady(f"the image registry {address} does not answer; start it, or set "
                             "DOCKYARD_REGISTRY to one that runs")
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(registry_config(root / "data", address))
    child = process.spawn([PROGRAM, "serve", str(config)], log_file=root / "registry.log")
    (root / "registry.pid").write_text(str(child.pid))
    local.wait_until(lambda: answers(address), timeout=30,
                     what=f"the registry at {address} (see {root / 'registry.log'})")
    return True


def stop_registry(root: Path) -> None:
    pid_file = root / "registry.pid"
    if pid_file.exists():
        netns.stop_process(int(pid_file.read_text()), PROGRAM)
        pid_file.unlink()
