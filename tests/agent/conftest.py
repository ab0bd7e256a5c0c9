"""Agent fixtures: a real agent app on a temporary state directory, and its signed client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.models import ImageRef
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.settings import AgentSettings
from dockyard.providers import images, local, netns
from dockyard.providers.cluster import Cluster, ClusterSettings
from dockyard.providers.images import RECIPES, ImageSettings, Tarball, bootstrap_tarball
from tests.ports import free_port

SECRET = "workspace-agent-secret"


def signed_headers(secret: str, method: str, path: str, body: bytes = b"",
                   timestamp: int | None = None) -> dict[str, str]:
    """Signature headers made by hand, for requests the client would never send."""
    claim = auth.SignedRequest(method, path, auth.body_digest(body),
                               int(time.time()) if timestamp is None else timestamp,
                               auth.new_nonce())
    return auth.signature_headers(auth.derive_agent_key(secret), claim)


def eventually_true(condition: Callable[[], bool], what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:.0f} s")
        time.sleep(0.01)


def require_nginx() -> None:
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (or /usr/sbin is not on PATH): apt-get install nginx")


@pytest.fixture
def nginx_root() -> Iterator[Path]:
    """A short directory (unix socket paths are limited) that every user may enter: the
    edge's workers, `nobody` under a root master, connect to the switch's sockets in it."""
    require_nginx()
    base = Path(tempfile.mkdtemp(prefix="dy-ngx-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base / "nginx"
    shutil.rmtree(base, ignore_errors=True)


def stop_and_wait(pair: Nginx) -> None:
    masters = pair.running_pids()
    pair.stop()
    eventually_true(lambda: not any(netns.alive(pid, "nginx") for pid in masters),
                    "both nginx masters exiting")


@pytest.fixture
def nginx(nginx_root: Path) -> Iterator[Nginx]:
    """The node's nginx pair, prepared, on a free loopback port; stopped afterwards."""
    pair = Nginx(NginxLayout(nginx_root, http_port=free_port(), https_port=free_port()))
    pair.prepare()
    yield pair
    stop_and_wait(pair)
    shutil.rmtree(pair.layout.runtime, ignore_errors=True)  # sockets, routes, keys in /run


@pytest.fixture
def agent_settings(tmp_path: Path) -> AgentSettings:
    """An agent whose Docker does not exist: enough for auth and validation at the edge."""
    settings = AgentSettings(state_dir=tmp_path / "agent",
                             docker_host=f"unix://{tmp_path}/no-docker.sock")
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    return settings


@pytest.fixture
def agent_transport(agent_settings: AgentSettings) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_app(agent_settings))


@pytest.fixture
async def agent(agent_transport: httpx.ASGITransport) -> AsyncIterator[NodeAgentClient]:
    async with NodeAgentClient("http://agent.test", SECRET, transport=agent_transport) as client:
        yield client


# The real stack: a 3-node cluster of namespaces, each with dockerd, nginx and an agent.

PROGRAMS = {"dockerd": "docker.io", "nginx": "nginx", "docker-registry": "docker-registry",
            "debootstrap": "debootstrap", "ip": "iproute2", "nsenter": "util-linux",
            "iptables": "iptables", "tar": "tar"}


def require_the_real_stack() -> None:
    if os.geteuid() != 0:
        pytest.fail("the cluster tests create namespaces and daemons: run them as root")
    missing = sorted({package for program, package in PROGRAMS.items()
                      if shutil.which(program) is None})
    if missing:
        pytest.fail(f"missing system packages; install them: apt-get install {' '.join(missing)}")


@pytest.fixture(scope="session")
def base_tarball() -> Tarball:
    """The debootstrapped Debian + python3 root file system, cached across sessions in
    DOCKYARD_IMAGES_CACHE_DIR (default /var/cache/dockyard/images)."""
    require_the_real_stack()
    return bootstrap_tarball(RECIPES["base"], ImageSettings())


# This machine's Docker, and the offline base image in it, for the tests that run containers.

@pytest.fixture(scope="module")
def docker_host() -> str:
    return local.ensure_local_docker(ImageSettings().cache_dir)


@pytest.fixture(scope="module")
def python_image(docker_host: str, base_tarball: Tarball) -> ImageRef:
    return images.import_tarball(DockerRuntime(docker_host), base_tarball)


def cluster_root(name: str) -> Path:
    """Short (unix socket paths are limited) and outside pytest's temporary directories,
    which a concurrent pytest run may clean up under a running daemon."""
    return Path("/var/tmp/dockyard-tests") / f"{name}-{os.getpid()}"


@contextmanager
def running_cluster(settings: ClusterSettings, nodes: int) -> Iterator[Cluster]:
    """A cluster that is taken down again whatever happens, and must come down cleanly."""
    the_cluster = Cluster(settings)
    try:
        the_cluster.up(nodes)
        yield the_cluster
    finally:
        problems = the_cluster.down()
        shutil.rmtree(settings.root, ignore_errors=True)
        assert problems == []


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    require_the_real_stack()
    settings = ClusterSettings(root=cluster_root("dyt"), subnet=IPv4Network("10.232.0.0/24"),
                               prefix="dyt")
    with running_cluster(settings, 3) as the_cluster:
        yield the_cluster


# A real `dockyard-agent` process (uvicorn, TLS by default), for transport tests.

AGENT_PROGRAM = str(Path(sys.executable).parent / "dockyard-agent")


@dataclass
class AgentProcess:
    state_dir: Path
    host: str
    port: int
    tls: bool
    child: subprocess.Popen[bytes]
    proxy: Nginx

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def log(self) -> str:
        return (self.state_dir / "agent.log").read_text()

    def stop(self) -> None:
        """Stop the agent (it waits up to 10 s for open connections: more here, then it is
        killed) and always its nginx, which outlives it by design."""
        try:
            self.child.terminate()
            try:
                self.child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(timeout=10)
                raise
        finally:
            self.proxy.stop()
            shutil.rmtree(self.proxy.layout.runtime, ignore_errors=True)


def _this_code() -> dict[str, str]:
    """PYTHONPATH when set: the agent runs the code under test (a worktree's, say)."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": path} if path else {}


def spawn_agent(state_dir: Path, key: bytes, *, host: str = "127.0.0.1", tls: bool = True,
                env: dict[str, str] | None = None) -> AgentProcess:
    """Start `dockyard-agent` holding `key` (Docker absent: enough for the transport) and wait
    until it answers its public health check."""
    port, http, https = free_port(), free_port(), free_port()
    auth.write_key_file(state_dir / "agent.key", key)
    env = {"DOCKYARD_AGENT_HOST": host, "DOCKYARD_AGENT_PORT": str(port),
           "DOCKYARD_AGENT_STATE_DIR": str(state_dir), "DOCKYARD_AGENT_TLS": str(tls).lower(),
           "DOCKYARD_AGENT_DOCKER_HOST": f"unix://{state_dir}/no-docker.sock",
           "DOCKYARD_AGENT_NGINX_HTTP_PORT": str(http),
           "DOCKYARD_AGENT_NGINX_HTTPS_PORT": str(https),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **_this_code(), **(env or {})}
    log = (state_dir / "agent.log").open("wb")
    child = subprocess.Popen([AGENT_PROGRAM], env=env, stdout=log, stderr=log)
    agent = AgentProcess(state_dir, host, port, tls, child,
                         Nginx(NginxLayout(state_dir / "nginx", http, https)))
    eventually_true(lambda: local.agent_answers(agent.url) or child.poll() is not None,
                    "the agent answering", within=30)
    assert child.poll() is None, agent.log
    return agent


@pytest.fixture
def agent_processes(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Start real agents (`start(key, host=..., tls=...)`); all stopped afterwards."""
    started: list[AgentProcess] = []

    def start(key: bytes, **options: Any) -> AgentProcess:
        started.append(spawn_agent(tmp_path / f"agent-{len(started)}", key, **options))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


class Hello(BaseHTTPRequestHandler):
    """A backend answering `ok` to every GET, over keep-alive."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once (no delayed-ACK wait)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_backend(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A loopback HTTP server answering with `handler` in a thread; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def backend_port() -> Iterator[int]:
    with http_backend(Hello) as port:
        yield port
