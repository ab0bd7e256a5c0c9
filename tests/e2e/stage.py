"""A real stage for deploys: `dockyard up` plus a 3-node namespace cluster registered in it,
its registry the one deploys push to; and a small client for the deploy API."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dockyard.providers.cluster import Cluster, ClusterSettings, NodeRecord
from tests.acme_server import Pebble
from tests.live import bring_up, dockyard, ok, ok_json, start, stop

API_TIMEOUT = httpx.Timeout(30.0, read=600.0)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"
ZONE, TOKEN = "example.test", "cf-test-token"  # the fake Cloudflare's zone and token


def tar_gz_of(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[len("data: "):])


@dataclass
class Stage:
    env: dict[str, str]
    url: str
    nodes: list[dict[str, Any]]
    root: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        token = json.loads((Path(self.env["XDG_CONFIG_HOME"]) / "dockyard" / "config.json")
                           .read_text())["token"]
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", timeout=API_TIMEOUT,
                                 headers={"Authorization": f"Bearer {token}"})

    def ensure_service(self, project: str, service: str) -> None:
        for path, body in (("/projects", {"name": project}),
                           (f"/projects/{project}/services", {"name": service})):
            answer = self.http.post(path, json=body)
            assert answer.status_code in (201, 409), answer.text

    def stream(self, path: str, **request: Any) -> Generator[dict[str, Any], None, None]:
        """The events of a deploy or rollback as they come; fails on a refusal."""
        with self.http.stream("POST", path, **request) as answer:
            if answer.status_code != 200:
                answer.read()
                raise AssertionError(f"{answer.status_code}: {answer.text}")
            yield from sse_events(answer.iter_lines())

    def deploy(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.stream("/infra/deploy", json=body))

    def deploy_archive(self, directory: Path, **query: Any) -> list[dict[str, Any]]:
        return list(self.stream("/infra/deploy", params=query, content=tar_gz_of(directory),
                                headers={"Content-Type": "application/gzip"}))

    def rollback(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.stream("/infra/deployments/rollback", json=body))

    def history(self, project: str, service: str) -> list[dict[str, Any]]:
        answer = self.http.get("/infra/deployments/history",
                               params={"project": project, "service": service})
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result

    def app(self, node: dict[str, Any], host: str, path: str = "/api") -> httpx.Response:
        return httpx.get(f"http://{node['ip']}{path}", headers={"Host": host}, timeout=5)

    def docker_socket(self, node: dict[str, Any]) -> str:
        index = node["name"].rsplit("node", 1)[1]
        return f"unix://{self.root}/nodes/node{index}/docker/docker.sock"


def cluster_env(root: Path) -> dict[str, str]:
    return {"DOCKYARD_CLUSTER_ROOT": str(root), "DOCKYARD_CLUSTER_PREFIX": "dyd",
            "DOCKYARD_CLUSTER_SUBNET": "10.235.0.0/24", "DOCKYARD_CLUSTER_REGISTRY_PORT": "5003"}


def domain_settings(pebble: Pebble, cloudflare_url: str) -> dict[str, str]:
    """A control plane whose certificates come from `pebble` and DNS from the fake
    Cloudflare at `cloudflare_url`."""
    return {"DOCKYARD_ACME_DIRECTORY_URL": pebble.directory_url,
            "DOCKYARD_ACME_CA_BUNDLE": str(pebble.ca_bundle),
            "DOCKYARD_CLOUDFLARE_API_URL": cloudflare_url}


def first_node(stage: Stage) -> tuple[Cluster, NodeRecord]:
    """The cluster and the record of the stage's first node (to kill and start its agent)."""
    settings = {k.removeprefix("DOCKYARD_CLUSTER_").lower(): v
                for k, v in cluster_env(stage.root).items()}
    cluster = Cluster(ClusterSettings.model_validate(settings))
    [node] = [n for n in cluster.state.nodes if n.ip == stage.nodes[0]["ip"]]
    return cluster, node


def staged(base: Path, settings: dict[str, str] | None = None
           ) -> Generator[Stage, None, None]:
    """Control plane + cluster (the control plane with these extra `settings`), always taken
    down again. A shared stage still up is taken down first: one cluster at a time."""
    for shared in SHARED:
        shared.close()
    root = Path("/var/tmp/dockyard-tests") / f"dep-{os.getpid()}"
    env, url = start(base)
    env = {**env, "DOCKYARD_REGISTRY": "10.235.0.1:5003", "DOCKYARD_AGENT_POLL_SECONDS": "5",
           "DOCKYARD_REGISTRY_CONFIG": str(root / "registry" / "config.yml"),  # the cluster's
           "DOCKYARD_GIT_ALLOW_LOCAL": "true", **(settings or {})}
    both = {**env, **cluster_env(root)}
    try:
        bring_up(env)
        ok(dockyard("cluster", "up", "--nodes", "3", "--register", env=both, timeout=300))
        nodes = ok_json(dockyard("servers", "list", "--json", env=env))
        yield Stage(env, url, sorted(nodes, key=lambda n: n["name"]), root)
    finally:
        dockyard("cluster", "down", env=both, timeout=300)
        stop(env)
        shutil.rmtree(root, ignore_errors=True)


class Stages:
    """At most one stage up at a time (they share the cluster's name, subnet and registry
    port): the one last asked for, kept up while the next module asks for the same settings.
    Every stage has the `defaults` too."""

    def __init__(self, new_base: Callable[[], Path], defaults: dict[str, str]) -> None:
        self._new_base, self._defaults = new_base, defaults
        self._settings: dict[str, str] | None = None
        self._up: Generator[Stage, None, None] | None = None
        self._stage: Stage | None = None

    def get(self, settings: dict[str, str] | None = None) -> Stage:
        settings = {**self._defaults, **(settings or {})}
        if self._stage is None or self._settings != settings:
            self.close()
            up = staged(self._new_base(), settings)
            self._stage = next(up)
            self._up, self._settings = up, settings
        return self._stage

    def close(self) -> None:
        if self._up is not None:
            self._up.close()  # runs staged()'s finally: cluster down, control plane stopped
        self._up = self._stage = self._settings = None


SHARED: list[Stages] = []


@contextmanager
def shared_stages(new_base: Callable[[], Path], defaults: dict[str, str]
                  ) -> Iterator[Stages]:
    """The stages the modules share, taken down by the end (or when a module brings up a
    stage of its own with `staged`)."""
    stages = Stages(new_base, defaults)
    SHARED.append(stages)
    try:
        yield stages
    finally:
        SHARED.remove(stages)
        stages.close()
