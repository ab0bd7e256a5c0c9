"""Provider `local`: this machine as one server, and the pieces the local cluster reuses.

Programs are described as argv lists by pure functions and started through `agent.process`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dockyard.agent import auth, process, tls

DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


class NotReady(RuntimeError):
    """Something did not come up in time; the message says what and where to look."""


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
               ) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise NotReady(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(interval)


@dataclass(frozen=True)
class DockerdLayout:
    """One Docker daemon's own directories, socket and pid file."""

    root: Path
    insecure_registries: tuple[str, ...] = ()
    shutdown_timeout: int | None = None
    dns: tuple[str, ...] = ()  # the containers' resolvers; Docker's own choice when empty

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "dockerd.log"


def dockerd_argv(layout: DockerdLayout) -> list[str]:
    argv = [
        "dockerd", "--data-root", str(layout.root / "data"),
        "--exec-root", str(layout.root / "exec"), "--host", layout.host,
        "--pidfile", str(layout.pid_file),
        "--config-file", str(layout.root / "daemon.json"),
    ]
    for registry in layout.insecure_registries:
        argv += ["--insecure-registry", registry]
    if layout.shutdown_timeout is not None:
        argv += ["--shutdown-timeout", str(layout.shutdown_timeout)]
    for address in layout.dns:
        argv += ["--dns", address]
    return argv


def docker_responds(host: str) -> bool:
    import docker.errors  # the Docker SDK only where this machine's Docker is asked

    try:
        client = docker.APIClient(base_url=host, version="1.41", timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return False


def start_dockerd(layout: DockerdLayout, prefix: list[str] | None = None) -> int:
    """Start a daemon (inside a namespace when `prefix` says so) and wait for its API."""
    deepest_socket = layout.root / "exec" / "containerd" / "containerd.sock"
    if len(str(deepest_socket)) > MAX_SOCKET_PATH:
        raise ValueError(f"{layout.root} is too deep for dockerd's unix sockets "
                         f"(at most {MAX_SOCKET_PATH} characters); choose a shorter directory")
    (layout.root / "daemon.json").parent.mkdir(parents=True, exist_ok=True)
    (layout.root / "daemon.json").write_text("{}\n")
    child = process.spawn([*(prefix or []), *dockerd_argv(layout)], log_file=layout.log_file)
    wait_until(lambda: docker_responds(layout.host), timeout=60,
               what=f"dockerd at {layout.socket} (see {layout.log_file})")
    return child.pid


def ensure_local_docker(state_dir: Path) -> str:
    """The host of this machine's Docker: the running one, or a daemon we start for it."""
    default = f"unix://{DEFAULT_DOCKER_SOCKET}"
    if docker_responds(default):
        return default
    log_file = state_dir / "dockerd.log"
    process.spawn(["dockerd"], log_file=log_file)
    wait_until(lambda: docker_responds(default), timeout=60, what=f"dockerd (see {log_file})")
    return default


@dataclass(frozen=True)
class AgentLaunch:
    """How to run one agent: where it listens, keeps state, and finds Docker and nginx."""

    state_dir: Path
    host: str
    port: int
    docker_host: str
    nginx_http_port: int = 80
    nginx_https_port: int = 443
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # Files other programs of the node append to (dockerd's) that the agent keeps bounded.
    other_logs: tuple[Path, ...] = ()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def certificate_files(self) -> tls.CertificateFiles:
        return tls.CertificateFiles(self.state_dir)

    def fingerprint(self) -> str:
        """The agent's certificate, made here before it starts (this machine's own disk is
        trustworthy, so the fingerprint read here needs no trust on first use)."""
        return tls.ensure_certificate(self.certificate_files)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "agent.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "agent.pid"

    def logs_env(self) -> dict[str, str]:
        """The agent started with its output in `log_file` keeps that file (and
        `other_logs`) bounded: copied and truncated past its `DOCKYARD_AGENT_LOG_*`."""
        files = [str(path) for path in (self.log_file, *self.other_logs)]
        return {"DOCKYARD_AGENT_LOG_FILES": json.dumps(files)}


def agent_env(launch: AgentLaunch, base: Mapping[str, str]) -> dict[str, str]:
    return {
        **base, **launch.extra_env,
        "DOCKYARD_AGENT_HOST": launch.host, "DOCKYARD_AGENT_PORT": str(launch.port),
        "DOCKYARD_AGENT_STATE_DIR": str(launch.state_dir),
        "DOCKYARD_AGENT_DOCKER_HOST": launch.docker_host,
        "DOCKYARD_AGENT_NGINX_HTTP_PORT": str(launch.nginx_http_port),
        "DOCKYARD_AGENT_NGINX_HTTPS_PORT": str(launch.nginx_https_port),
        "DOCKYARD_AGENT_LOG_JSON": "true",
    }


def agent_argv() -> list[str]:
    return [sys.executable, "-m", "dockyard.agent.main"]


def install_agent_key(launch: AgentLaunch, secret: str | bytes) -> None:
    auth.write_key_file(launch.state_dir / "agent.key", auth.derive_agent_key(secret))


def agent_answers(url: str) -> bool:
    """Whether an agent is up there: its public liveness answer, which carries no secret,
    so the certificate is not checked here (every signed call checks its pin)."""
    try:
        return httpx.get(f"{url}/healthz", timeout=2, verify=False).status_code == 200  # noqa: S501
    except httpx.HTTPError:
        return False


def start_agent(launch: AgentLaunch, prefix: list[str] | None = None) -> int:
    """Start an agent (inside a namespace when `prefix` says so) and wait until it answers."""
    launch.state_dir.mkdir(parents=True, exist_ok=True)
    launch.fingerprint()
    child = process.spawn([*(prefix or []), *agent_argv()], log_file=launch.log_file,
                          env={**agent_env(launch, os.environ), **launch.logs_env()})
    launch.pid_file.write_text(str(child.pid))
    wait_until(lambda: agent_answers(launch.url) or child.poll() is not None, timeout=60,
               what=f"agent at {launch.url} (see {launch.log_file})")
    if child.poll() is not None:
        raise NotReady(f"agent at {launch.url} exited {child.returncode}; see {launch.log_file}")
    return child.pid
