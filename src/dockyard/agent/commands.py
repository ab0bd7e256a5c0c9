"""Docker Engine operations as data: pure builders of `EngineCall`s, executed by `runtime`.

Each call names a method of `docker.APIClient` and its keyword arguments; container creation
carries a raw Engine-API body (`POST /containers/create`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from dockyard.agent.buildconfig import BuildOptions
from dockyard.agent.models import ContainerSpec, HealthCheck, ImageRef, ImageSummary

MANAGED_LABEL = "dockyard.managed"
SERVICE_LABEL = "dockyard.service"
DEPLOYMENT_LABEL = "dockyard.deployment"
DEPLOY_TAG_PREFIX = "deploy_"
_NANO = 1_000_000_000


@dataclass(frozen=True)
class EngineCall:
    method: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def owned_labels(service: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), MANAGED_LABEL: "true", SERVICE_LABEL: service}


def healthcheck(check: HealthCheck) -> dict[str, Any]:
    return {
        "Test": ["CMD", *check.command],
        "Interval": int(check.interval_seconds * _NANO),
        "Timeout": int(check.timeout_seconds * _NANO),
        "Retries": check.retries,
        "StartPeriod": int(check.start_period_seconds * _NANO),
    }


@dataclass(frozen=True)
class ContainerLogs:
    """Docker's log of one container: `files` json-file files of at most `max_bytes` each
    (Docker starts a new file once one reaches the size, so each may pass it by one line)."""

    max_bytes: int = 10 * 1024**2
    files: int = 3

    def log_config(self) -> dict[str, Any]:
        return {"Type": "json-file",
                "Config": {"max-size": str(self.max_bytes), "max-file": str(self.files)}}


def host_config(spec: ContainerSpec, logs: ContainerLogs) -> dict[str, Any]:
    config: dict[str, Any] = {
        "PortBindings": {
            f"{p.container_port}/{p.protocol}": [
                {"HostIp": p.host_ip, "HostPort": str(p.host_port)}
            ]
            for p in spec.ports
        },
        "RestartPolicy": {"Name": spec.restart.value, "MaximumRetryCount": 0},
        "Mounts": [
            {"Type": "volume", "Source": v.volume, "Target": v.target} for v in spec.volumes
        ],
        "LogConfig": logs.log_config(),
    }
    if spec.extra_hosts:
        config["ExtraHosts"] = [f"{name}:{address}" for name, address
                                in sorted(spec.extra_hosts.items())]
    if spec.memory_bytes is not None:
        config["Memory"] = spec.memory_bytes
    if spec.cpus is not None:
        config["NanoCpus"] = int(spec.cpus * _NANO)
    return config


def container_config(spec: ContainerSpec, logs: ContainerLogs) -> dict[str, Any]:
    """The Engine-API body that creates `spec`'s container."""
    config: dict[str, Any] = {
        "Image": spec.image.reference,
        "Env": [f"{key}={value}" for key, value in sorted(spec.env.items())],
        "Labels": owned_labels(spec.service, spec.labels),
        "ExposedPorts": {f"{p.container_port}/{p.protocol}": {} for p in spec.ports},
        "HostConfig": host_config(spec, logs),
    }
    if spec.command is not None:
        config["Cmd"] = list(spec.command)
    if spec.health is not None:
        config["Healthcheck"] = healthcheck(spec.health)
    return config


def create_volume(name: str, service: str) -> EngineCall:
    return EngineCall("create_volume", {"name": name, "driver": "local",
                                        "labels": owned_labels(service)})


def run_container(spec: ContainerSpec, logs: ContainerLogs) -> list[EngineCall]:
    volumes = [create_volume(v.volume, spec.service) for v in spec.volumes]
    create = EngineCall("create_container_from_config",
                        {"config": container_config(spec, logs), "name": spec.name})
    return [*volumes, create, start_container(spec.name)]


def start_container(name: str) -> EngineCall:
    return EngineCall("start", {"container": name})


def stop_container(name: str, grace_seconds: int) -> EngineCall:
    return EngineCall("stop", {"container": name, "timeout": grace_seconds})


def remove_container(name: str) -> EngineCall:
    return EngineCall("remove_container", {"container": name, "force": True, "v": False})


def inspect_container(name: str) -> EngineCall:
    return EngineCall("inspect_container", {"container": name})


def list_containers(labels: Mapping[str, str]) -> EngineCall:
    selectors = [f"{key}={value}" for key, value in sorted(labels.items())]
    return EngineCall("containers", {"all": True, "filters": {"label": selectors}})


def container_stats(name: str) -> EngineCall:
    return EngineCall("stats", {"container": name, "stream": False, "one_shot": True})


def container_exits(container_id: str, since: int, until: float) -> EngineCall:
    """Docker's `die` and `oom` events of one container between two Unix times."""
    return EngineCall("events", {
        "since": since, "until": f"{until:.9f}", "decode": True,
        "filters": {"container": [container_id], "event": ["die", "oom"]}})


def managed_exits(since: float, until: float) -> EngineCall:
    """Docker's `die` and `oom` events of every container the agent manages, between two
    Unix times."""
    return EngineCall("events", {
        "since": f"{since:.9f}", "until": f"{until:.9f}", "decode": True,
        "filters": {"type": ["container"], "event": ["die", "oom"],
                    "label": [f"{MANAGED_LABEL}=true"]}})


def wait_container(name: str) -> EngineCall:
    return EngineCall("wait", {"container": name})


def kill_container(name: str) -> EngineCall:
    return EngineCall("kill", {"container": name})


def container_logs(name: str, *, follow: bool, tail: int) -> EngineCall:
    return EngineCall("logs", {"container": name, "stream": True, "follow": follow,
                               "tail": tail, "stdout": True, "stderr": True})


def follow_logs(name: str) -> EngineCall:
    """Everything the container writes, from its start until it exits."""
    return EngineCall("logs", {"container": name, "stream": True, "follow": True,
                               "tail": "all", "stdout": True, "stderr": True})


def build_image(context: IO[bytes], target: ImageRef, dockerfile: str,
                options: BuildOptions = BuildOptions()) -> EngineCall:
    return EngineCall("build", {
        "fileobj": context, "custom_context": True, "tag": target.reference,
        "dockerfile": dockerfile, "rm": True, "forcerm": True, "decode": True,
        "buildargs": options.engine_build_args(),
        "container_limits": options.container_limits(),
    })


def import_image(rootfs: Iterable[bytes], target: ImageRef, changes: tuple[str, ...] = ()
                 ) -> EngineCall:
    """`rootfs` is an iterable of chunks: the SDK sends it chunked, as the Engine expects."""
    return EngineCall("import_image_from_stream", {
        "stream": rootfs, "repository": target.repository, "tag": target.tag,
        "changes": list(changes) or None,
    })


def pull_image(ref: ImageRef) -> EngineCall:
    return EngineCall("pull", {"repository": ref.repository, "tag": ref.tag,
                               "stream": True, "decode": True})


def push_image(ref: ImageRef) -> EngineCall:
    return EngineCall("push", {"repository": ref.repository, "tag": ref.tag,
                               "stream": True, "decode": True})


def tag_image(source: ImageRef, target: ImageRef) -> EngineCall:
    return EngineCall("tag", {"image": source.reference, "repository": target.repository,
                              "tag": target.tag})


def list_images() -> EngineCall:
    return EngineCall("images", {"all": False})


def remove_image(reference: str) -> EngineCall:
    return EngineCall("remove_image", {"image": reference, "force": False, "noprune": False})


def prune_dangling_images(max_age_seconds: int) -> EngineCall:
    """Untagged images older than `max_age_seconds` (the build cache age). Younger ones
    include the dependency stage of recent builds: the build cache that lets a change of app
    code alone skip the install. Layers of kept release images are never dangling."""
    return EngineCall("prune_images",
                      {"filters": {"dangling": True, "until": f"{max_age_seconds}s"}})


def prune_build_cache(max_age_seconds: int, keep_bytes: int) -> EngineCall:
    """BuildKit's cache entries unused for `max_age_seconds`, then the least recently used
    ones until at most `keep_bytes` remain (Docker's own order)."""
    return EngineCall("prune_builds", {"filters": {"until": f"{max_age_seconds}s"},
                                       "keep_storage": keep_bytes})


def list_volumes(service: str) -> EngineCall:
    return EngineCall("volumes", {"filters": {"label": [f"{SERVICE_LABEL}={service}"]}})


def disk_usage() -> EngineCall:
    """What Docker's images, containers and volumes take on disk (volume sizes included)."""
    return EngineCall("df", {})


def remove_volume(name: str) -> EngineCall:
    return EngineCall("remove_volume", {"name": name, "force": False})


def engine_version() -> EngineCall:
    return EngineCall("version")


def deploy_tags_outside(images: list[ImageSummary], repository: str, retain: set[str]
                        ) -> list[str]:
    """Every `deploy_*` tag of `repository` whose tag is not in `retain`."""
    doomed = []
    for image in images:
        for reference in image.tags:
            name, _, tag = reference.rpartition(":")
            if name == repository and tag.startswith(DEPLOY_TAG_PREFIX) and tag not in retain:
                doomed.append(reference)
    return sorted(doomed)


def deploy_tags_to_remove(images: list[ImageSummary], keep: int) -> list[str]:
    """Every `deploy_*` tag but the newest `keep` of each repository, oldest last."""
    by_repository: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for image in images:
        for reference in image.tags:
            repository, _, tag = reference.rpartition(":")
            if tag.startswith(DEPLOY_TAG_PREFIX):
                by_repository[repository].append((image.created, reference))
    doomed: list[str] = []
    for repository in sorted(by_repository):
        newest_first = sorted(by_repository[repository], reverse=True)
        doomed.extend(reference for _, reference in newest_first[keep:])
    return doomed
