"""The cloud-config user-data that turns a fresh droplet into a Dockyard server: pure text
from a `BootPlan`, YAML written by yaml.safe_dump with only `write_files` and `runcmd` (argv
lists, no shell). Three shapes: a server from a stock image (packages, venv, the agent's
requirements, the bundle, the agent started), a server from a Dockyard snapshot (the venv is
there; requirements only when they changed), and a snapshot build (stock shape without any
secret, the agent not started, the control plane told when it is done)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml  # type: ignore[import-untyped]

from dockyard.agent.release import Layout
from dockyard.core.install import AGENT_UNIT, PROVISIONED_AGENT, FileToWrite
from dockyard.kernel.errors import InvalidInput
from dockyard.providers import local
from dockyard.providers.digitalocean import MAX_USER_DATA
from dockyard.providers.systemd import SYSTEMCTL

# Bump when the script below changes: recorded on each provisioned server and snapshot.
CLOUD_INIT_VERSION = 2
STOCK_PACKAGES = ("docker.io", "nginx", "python3-venv", "curl", "ca-certificates")
BUNDLE_PATH = "/api/v1/agent/bundle"
WRITABLE = ("/etc/dockyard/", "/etc/systemd/system/", "/var/lib/dockyard-agent/",
            "/opt/dockyard/")
LAYOUT = Layout()


def agent_launch() -> local.AgentLaunch:
    """A provisioned server's agent: its code from the layout, and its containers kept from
    the cloud's metadata service (whose user-data holds the agent's keys)."""
    return replace(PROVISIONED_AGENT, extra_env={
        "PYTHONPATH": str(LAYOUT.current), "DOCKYARD_AGENT_RELEASES_DIR": str(LAYOUT.home),
        "DOCKYARD_AGENT_BLOCK_METADATA": "true"})


@dataclass(frozen=True)
class BootPlan:
    """What one droplet's user-data installs. `agent_files` (unit, environment, key, TLS
    certificate and key) are empty for a snapshot build: no secret is baked into an image."""

    control_plane_url: str  # public: the droplet fetches the bundle from it
    bundle_version: str
    bundle_sha256: str
    requirements: tuple[str, ...]
    agent_files: tuple[FileToWrite, ...] = ()
    from_snapshot: bool = False
    snapshot_requirements_digest: str = ""  # what the snapshot's venv holds
    build_done_url: str = ""  # a snapshot build: POSTed last

    @property
    def starts_agent(self) -> bool:
        return bool(self.agent_files)


def requirements_digest(requirements: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()


def bundle_file(version: str) -> Path:
    return LAYOUT.home / f"bundle-{version}.tar.gz"


def _sha256_file(plan: BootPlan) -> dict[str, str]:
    target = bundle_file(plan.bundle_version)
    return {"path": f"{target}.sha256", "content": f"{plan.bundle_sha256}  {target}\n",
            "permissions": "0644"}


def _written(file: FileToWrite) -> dict[str, str]:
    path = str(file.path)
    if not path.startswith(WRITABLE):
        raise ValueError(f"user-data may not write {path}")
    return {"path": path, "content": file.text, "permissions": f"0{file.mode:o}"}


def _packages(plan: BootPlan) -> list[list[str]]:
    if plan.from_snapshot:
        return []
    return [["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", *STOCK_PACKAGES],
            ["python3", "-m", "venv", str(LAYOUT.venv)]]


def _requirements(plan: BootPlan) -> list[list[str]]:
    unchanged = requirements_digest(plan.requirements) == plan.snapshot_requirements_digest
    if plan.from_snapshot and unchanged:
        return []
    return [[str(LAYOUT.venv / "bin" / "pip"), "install", "--no-input",
             "--disable-pip-version-check", *plan.requirements]]


def _bundle(plan: BootPlan) -> list[list[str]]:
    version, target = plan.bundle_version, bundle_file(plan.bundle_version)
    url = f"{plan.control_plane_url.rstrip('/')}{BUNDLE_PATH}/{plan.bundle_sha256}"
    release = LAYOUT.release(version)
    return [["curl", "--fail", "--silent", "--show-error", "--retry", "5", "--output",
             str(target), url],
            ["sha256sum", "--check", "--strict", f"{target}.sha256"],
            ["mkdir", "-p", str(release)],
            ["tar", "-xzf", str(target), "-C", str(release)],
            ["ln", "-sfn", f"releases/{version}", str(LAYOUT.current)]]


def _finish(plan: BootPlan) -> list[list[str]]:
    if plan.starts_agent:
        return [[SYSTEMCTL, "daemon-reload"],
                [SYSTEMCTL, "enable", "--now", "docker.service", AGENT_UNIT]]
    return [["curl", "--fail", "--silent", "--show-error", "--retry", "5", "-X", "POST",
             plan.build_done_url]]


def cloud_config(plan: BootPlan) -> dict[str, list[object]]:
    """The cloud-config document: files first, then the commands in order."""
    files = [_written(file) for file in plan.agent_files] + [_sha256_file(plan)]
    commands = [*_packages(plan), *_requirements(plan), *_bundle(plan), *_finish(plan)]
    return {"write_files": list(files), "runcmd": list(commands)}


def render_user_data(plan: BootPlan) -> str:
    """The user-data text; refused above DigitalOcean's 64 KiB."""
    if not plan.starts_agent and not plan.build_done_url:
        raise ValueError("a boot plan starts the agent or reports a snapshot build done")
    text = "#cloud-config\n" + str(yaml.safe_dump(cloud_config(plan), sort_keys=False,
                                              default_flow_style=False, width=1 << 16))
    if len(text.encode()) > MAX_USER_DATA:
        raise InvalidInput(f"the user-data would be {len(text.encode())} bytes; DigitalOcean "
                           f"takes at most {MAX_USER_DATA}")
    return text
