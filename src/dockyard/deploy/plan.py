"""Pure naming and shapes of a deployment: image tags, container and site specs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.agent.commands import DEPLOYMENT_LABEL as DEPLOYMENT_LABEL
from dockyard.agent.models import ContainerSpec, ImageRef, PortBinding, Site, Upstream
from dockyard.models.deployment_plan import Processes
from dockyard.models.deploys import Effective

PROCESS_TYPE_LABEL = "dockyard.process-type"
REPLICA_LABEL = "dockyard.replica"
LOOPBACK = "127.0.0.1"
_MAX_SITE = 40  # the switch layer's unix socket path is named after it (108 bytes at most)


def process_of(labels: dict[str, str]) -> tuple[str, int]:
    """A container's process type and replica number from its labels (`web`, 1 until
    deploys set them)."""
    replica = labels.get(REPLICA_LABEL, "1")
    return labels.get(PROCESS_TYPE_LABEL, "web"), int(replica) if replica.isdigit() else 1


def deploy_tag(deployment_id: str) -> str:
    return f"deploy_{deployment_id[:8]}"


def image_base(registry: str, workspace: str, project: str, service: str) -> str:
    """Where a service's images live; the workspace keeps equal names apart."""
    return f"{registry}/{workspace}/{project}/{service}"


def release_image(base: str, deployment_id: str) -> ImageRef:
    return ImageRef(repository=base, tag=deploy_tag(deployment_id))


def parse_image(reference: str) -> ImageRef:
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        return ImageRef(repository=reference)
    return ImageRef(repository=repository, tag=tag)


def site_name(project: str, service: str) -> str:
    """The node-side name of a service (nginx site, container label): one DNS label."""
    name = f"{project}-{service}"
    if len(name) <= _MAX_SITE:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{project[:15]}-{service[:15]}-{digest}"


def container_name(site: str, deployment_id: str, kind: str = "web", replica: int = 1) -> str:
    """`web.1` keeps the name releases had before process types; the others are suffixed."""
    name = f"{site}-{deployment_id[:8]}"
    return name if (kind, replica) == ("web", 1) else f"{name}-{kind}-{replica}"


def is_container_of(site: str, name: str) -> bool:
    """Whether `name` is a release container of `site` (not of a site whose name goes on)."""
    return re.fullmatch(rf"{re.escape(site)}-[0-9a-f]{{8}}(?:-[a-z][a-z0-9_-]*-[0-9]+)?",
                        name) is not None


def default_host(project: str, service: str, apps_domain: str) -> str:
    return f"{service}.{project}.{apps_domain}"


def release_env(env: dict[str, str], params: Effective, deployment_id: str, service: str
                ) -> dict[str, str]:
    """The service's variables plus what the platform tells every app."""
    return {**env, "PORT": str(params.port), "DOCKYARD_RELEASE": deployment_id[:8],
            "DOCKYARD_SERVICE": service}


@dataclass(frozen=True)
class Process:
    """One container of a release: its type, replica number and command (None: the
    image's own, for `web` without a `command`)."""

    kind: str
    replica: int
    command: list[str] | None

    @property
    def serves_http(self) -> bool:
        return self.kind == "web"


def processes_of(processes: Processes, params: Effective, only: str | None = None
                 ) -> list[Process]:
    """Every container a release runs on each server: `web` first, then the other types,
    each as many times as the service is scaled to; `only` keeps one type."""
    commands: dict[str, list[str] | None] = {"web": params.command, **processes.commands}
    return [Process(kind, replica, commands[kind])
            for kind in processes.types() if only in (None, kind)
            for replica in range(1, params.replicas(kind) + 1)]


def container_spec(site: str, deployment_id: str, image: ImageRef, env: dict[str, str],
                   params: Effective, process: Process | None = None,
                   extra_hosts: dict[str, str] | None = None) -> ContainerSpec:
    """A release's container (`web.1` unless told); `web` is published on a free loopback
    port the agent picks; `extra_hosts` are the names of its linked stateful services."""
    process = process or Process("web", 1, params.command)
    ports = [PortBinding(container_port=params.port, host_port=0, host_ip=LOOPBACK)]
    labels = {DEPLOYMENT_LABEL: deployment_id, PROCESS_TYPE_LABEL: process.kind,
              REPLICA_LABEL: str(process.replica)}
    return ContainerSpec(
        name=container_name(site, deployment_id, process.kind, process.replica), service=site,
        image=image, env={**env, "DOCKYARD_PROCESS": f"{process.kind}.{process.replica}"},
        command=process.command, labels=labels, ports=ports if process.serves_http else [],
        memory_bytes=params.memory_mb * 1024 * 1024 if params.memory_mb else None,
        cpus=params.cpus, extra_hosts=extra_hosts or {},
    )


def site_for(site: str, hosts: list[str], ports: list[int]) -> Site:
    upstreams = [Upstream(host=LOOPBACK, port=port) for port in ports]
    return Site(service=site, server_names=hosts, upstreams=upstreams)
