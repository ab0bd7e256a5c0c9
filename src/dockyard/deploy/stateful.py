"""What a stateful service (Postgres, Redis) runs as on its server, as pure functions of its
record: the container, its volume, its stable name and the URL apps get."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from dockyard.agent.models import (
    ContainerSpec,
    FirewallRule,
    HealthCheck,
    ImageRef,
    PortBinding,
    VolumeMount,
)
from dockyard.deploy.plan import parse_image, site_name
from dockyard.models.enums import ServiceKind

__all__ = ["parse_image"]

PORTS = range(20000, 30000)  # published on each server, one per stateful service there
INTERNAL_DOMAIN = "dockyard.internal"
STATEFUL_LABEL = "dockyard.stateful"
OFFLINE_REPOSITORIES = ("dockyard/postgres", "dockyard/redis")
POSTGRES_ENTRYPOINT = "/usr/local/bin/dockyard-postgres"


@dataclass(frozen=True)
class Engine:
    """How one kind runs: its port inside the container, data directory and URL scheme."""

    port: int
    data_dir: str
    scheme: str
    official_image: str


ENGINES = {
    ServiceKind.POSTGRES: Engine(5432, "/var/lib/postgresql/data", "postgresql", "postgres"),
    ServiceKind.REDIS: Engine(6379, "/data", "redis", "redis"),
}


@dataclass(frozen=True)
class Instance:
    """A stateful service's record, decrypted: everything its container and URL need."""

    kind: ServiceKind
    project: str
    service: str
    image: ImageRef
    port: int
    password: str
    memory_mb: int | None = None

    @property
    def site(self) -> str:
        return site_name(self.project, self.service)

    @property
    def user(self) -> str:
        """The Postgres user and database: the service name as an SQL identifier."""
        return self.service.replace("-", "_")


def hostname(project: str, service: str) -> str:
    """The stable name apps reach a stateful service at, whichever server runs it."""
    return f"{service}.{project}.{INTERNAL_DOMAIN}"


def container_name(site: str) -> str:
    return f"{site}-data"


def volume_name(site: str) -> str:
    return f"{site}-volume"


def service_url(instance: Instance) -> str:
    """The URL an app of the project gets (with the password)."""
    engine = ENGINES[instance.kind]
    secret = quote(instance.password, safe="")
    host = f"{hostname(instance.project, instance.service)}:{instance.port}"
    if instance.kind is ServiceKind.POSTGRES:
        return f"{engine.scheme}://{instance.user}:{secret}@{host}/{instance.user}"
    return f"{engine.scheme}://:{secret}@{host}/0"


def offline_image(kind: ServiceKind, tag: str) -> ImageRef:
    """The image built from Debian packages (providers/images.py), `tag` naming the build."""
    return ImageRef(repository=f"dockyard/{kind.value}", tag=tag)


def firewall_rule(instance: Instance, allowed: list[str]) -> FirewallRule:
    """Only `allowed` (the workspace's servers) reach the published port from outside."""
    ipv4 = [ip for ip in allowed if ":" not in ip]  # published ports are IPv4 (0.0.0.0)
    return FirewallRule(name=container_name(instance.site), port=instance.port, allow=ipv4)


def free_port(taken: set[int]) -> int | None:
    return next((port for port in PORTS if port not in taken), None)


def container_spec(instance: Instance) -> ContainerSpec:
    """The one container of a stateful service: its data on a named volume that no deploy,
    restart or image clean-up removes, its port published on the server."""
    engine = ENGINES[instance.kind]
    return ContainerSpec(
        name=container_name(instance.site), service=instance.site, image=instance.image,
        command=_command(instance), env=_env(instance), labels={STATEFUL_LABEL: instance.kind},
        ports=[PortBinding(container_port=engine.port, host_port=instance.port)],
        volumes=[VolumeMount(volume=volume_name(instance.site), target=engine.data_dir)],
        health=HealthCheck(command=_health(instance), interval_seconds=1, timeout_seconds=5,
                           retries=3),
        memory_bytes=instance.memory_mb * 1024 * 1024 if instance.memory_mb else None,
    )


def is_offline(image: ImageRef) -> bool:
    return image.repository in OFFLINE_REPOSITORIES


def _command(instance: Instance) -> list[str] | None:
    if instance.kind is ServiceKind.REDIS:
        return ["redis-server", "--port", str(ENGINES[instance.kind].port), "--dir", "/data",
                "--appendonly", "yes", "--requirepass", instance.password,
                "--protected-mode", "no"]
    return [POSTGRES_ENTRYPOINT] if is_offline(instance.image) else None


def _env(instance: Instance) -> dict[str, str]:
    if instance.kind is ServiceKind.REDIS:
        return {}
    return {"POSTGRES_USER": instance.user, "POSTGRES_DB": instance.user,
            "POSTGRES_PASSWORD": instance.password, "PGDATA": ENGINES[instance.kind].data_dir}


def _health(instance: Instance) -> list[str]:
    if instance.kind is ServiceKind.REDIS:
        return ["redis-cli", "--no-auth-warning", "-a", instance.password, "ping"]
    # Debian keeps pg_isready in a versioned directory, off PATH
    return ["sh", "-c", "exec $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/pg_isready "
                        "-q -h 127.0.0.1"]
