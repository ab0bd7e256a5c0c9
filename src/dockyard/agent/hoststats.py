"""The node's health figures: CPU (between two samples of /proc/stat), memory (/proc/meminfo),
the disk holding Docker's data and the file systems the agent writes to, container counts,
and what each service's containers use, read from their cgroup files (cgroup v1 or v2, either
Docker cgroup driver). A sampler takes them every SAMPLE_SECONDS in the background; the
endpoint answers the latest sample."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread

from dockyard.agent import commands as cmd
from dockyard.agent.runtime import DockerRuntime, EngineError
from dockyard.models.app_metrics import FileSystemUsage, HostStats, ServiceUsage

SAMPLE_SECONDS = 5.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")
log = logging.getLogger("dockyard.agent")


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    total: int


def cpu_times(stat_text: str) -> CpuTimes:
    """The machine's CPU time (in ticks) from /proc/stat's `cpu` line; idle and iowait are
    not busy."""
    ticks = [int(value) for value in stat_text.splitlines()[0].split()[1:9]]
    return CpuTimes(busy=sum(ticks) - ticks[3] - ticks[4], total=sum(ticks))


def busy_percent(before: CpuTimes, after: CpuTimes) -> float:
    elapsed = after.total - before.total
    return round(100 * (after.busy - before.busy) / elapsed, 1) if elapsed > 0 else 0.0


def memory_figures(meminfo_text: str) -> tuple[int, int]:
    """(total, used) bytes: used is what is not available."""
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024
              for line in meminfo_text.splitlines() if line.split()[1:2]}
    total = fields.get("MemTotal", 0)
    return total, total - fields.get("MemAvailable", fields.get("MemFree", 0))


def disk_figures(path: Path) -> tuple[int, int]:
    """(total, used) bytes of the file system holding `path`."""
    found = os.statvfs(path)
    return found.f_blocks * found.f_frsize, (found.f_blocks - found.f_bfree) * found.f_frsize


def file_systems(paths: dict[str, Path]) -> list[FileSystemUsage]:
    """The file systems holding `paths` (by role), each once with all its roles; a path
    that does not exist is left out."""
    by_device: dict[int, list[tuple[str, Path]]] = defaultdict(list)
    for role, path in paths.items():
        if path.exists():
            by_device[path.stat().st_dev].append((role, path))
    return [_file_system(entries) for entries in by_device.values()]


def _file_system(entries: list[tuple[str, Path]]) -> FileSystemUsage:
    total, _, free = shutil.disk_usage(entries[0][1])
    return FileSystemUsage(roles=[role for role, _ in entries], path=str(entries[0][1]),
                           total_bytes=total, free_bytes=free)


class DiskWatch:
    """The file systems the agent writes to: its state directory and Docker's data root,
    read afresh each time (a statvfs each)."""

    def __init__(self, runtime: DockerRuntime, state_dir: Path) -> None:
        self.runtime = runtime
        self.state_dir = state_dir
        self._docker_root: Path | None = None

    async def read(self) -> list[FileSystemUsage]:
        paths = {"agent": self.state_dir}
        docker = await self.docker_root()
        if docker is not None:
            paths["docker"] = docker
        return await to_thread.run_sync(file_systems, paths)

    async def docker_root(self) -> Path | None:
        """Asked of Docker once; None while Docker does not answer."""
        if self._docker_root is None:
            try:
                info = await self.runtime.run(cmd.EngineCall("info"))
                self._docker_root = Path(info["DockerRootDir"])
            except (EngineError, KeyError, TypeError):
                return None
        return self._docker_root


def cgroup_dirs(root: Path, container_id: str, controller: str) -> list[Path]:
    """Where a container's cgroup may be: v2 (one hierarchy) or v1 (`controller`'s), under
    the cgroupfs driver (`docker/<id>`) or the systemd one (`system.slice/docker-<id>.scope`)."""
    leaves = [Path("docker") / container_id, Path("system.slice") / f"docker-{container_id}.scope"]
    if (root / "cgroup.controllers").exists():
        return [root / leaf for leaf in leaves]
    names = [controller, "cpu,cpuacct"] if controller == "cpuacct" else [controller]
    return [root / name / leaf for name in names for leaf in leaves]


def _first_dir(candidates: list[Path]) -> Path | None:
    return next((path for path in candidates if path.is_dir()), None)


def _stat_field(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


def cpu_nanoseconds(directory: Path) -> int:
    """CPU time a cgroup used: v1 `cpuacct.usage` (ns), v2 `cpu.stat` usage_usec."""
    if (directory / "cpuacct.usage").exists():
        return int((directory / "cpuacct.usage").read_text())
    return _stat_field(directory / "cpu.stat", "usage_usec") * 1000


def memory_bytes(directory: Path) -> int:
    """Memory a cgroup uses, without the page cache it could drop (as `docker stats`)."""
    if (directory / "memory.usage_in_bytes").exists():
        used = int((directory / "memory.usage_in_bytes").read_text())
        return max(used - _stat_field(directory / "memory.stat", "total_inactive_file"), 0)
    used = int((directory / "memory.current").read_text())
    return max(used - _stat_field(directory / "memory.stat", "inactive_file"), 0)


@dataclass(frozen=True)
class ContainerUsage:
    cpu_ns: int
    memory: int


def container_usage(root: Path, container_id: str) -> ContainerUsage | None:
    """None when its cgroup is not found (it stopped meanwhile, or another layout)."""
    cpu = _first_dir(cgroup_dirs(root, container_id, "cpuacct"))
    memory = _first_dir(cgroup_dirs(root, container_id, "memory"))
    if cpu is None or memory is None:
        return None
    try:
        return ContainerUsage(cpu_nanoseconds(cpu), memory_bytes(memory))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    cpu: CpuTimes
    containers: dict[str, ContainerUsage]


def service_usage(containers: list[dict[str, Any]], before: Sample | None, after: Sample
                  ) -> list[ServiceUsage]:
    """Per service label: its running containers, their CPU between the two samples (of one
    CPU), their memory now."""
    found: dict[str, list[str]] = defaultdict(list)
    for raw in containers:
        service = (raw.get("Labels") or {}).get(cmd.SERVICE_LABEL)
        if service and raw.get("State") == "running":
            found[service].append(raw["Id"])
    return [_usage(service, ids, before, after) for service, ids in sorted(found.items())]


def _usage(service: str, ids: list[str], before: Sample | None, after: Sample) -> ServiceUsage:
    seconds = after.at - before.at if before else 0.0
    cpu = memory = 0.0
    for container_id in ids:
        now = after.containers.get(container_id)
        then = before.containers.get(container_id) if before else None
        memory += now.memory if now else 0
        if now and then and seconds > 0:
            cpu += max(now.cpu_ns - then.cpu_ns, 0) / 1e9 / seconds * 100
    return ServiceUsage(service=service, containers=len(ids), cpu_percent=round(cpu, 1),
                        memory_bytes=int(memory))


class HostSampler:
    def __init__(self, runtime: DockerRuntime, cgroup_root: Path = CGROUP_ROOT,
                 proc: Path = PROC, disks: DiskWatch | None = None) -> None:
        self.runtime = runtime
        self.cgroup_root = cgroup_root
        self.proc = proc
        self.disks = disks
        self.latest: HostStats | None = None
        self._previous: Sample | None = None
        self._data_root: Path | None = None

    async def current(self) -> HostStats:
        """The latest sample, or one taken now when there is none yet."""
        return self.latest or await self.sample()

    async def sample(self) -> HostStats:
        containers = await self._containers()
        data_root = await self._docker_data_root()
        stats, self._previous = await to_thread.run_sync(
            self._read, containers, data_root, self._previous)
        if self.disks is not None:
            stats = stats.model_copy(update={"file_systems": await self.disks.read()})
        self.latest = stats
        return stats

    async def run(self, seconds: float = SAMPLE_SECONDS) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # the next round tries again
                log.exception("host figures: sampling failed")
            await asyncio.sleep(seconds)

    async def _containers(self) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = await self.runtime.run(cmd.list_containers({}))
            return found
        except EngineError:
            return []

    async def _docker_data_root(self) -> Path:
        """Asked of Docker once; the root file system while Docker does not answer."""
        if self._data_root is None:
            try:
                info = await self.runtime.run(cmd.EngineCall("info"))
                self._data_root = Path(info["DockerRootDir"])
            except (EngineError, KeyError):
                return Path("/")
        return self._data_root

    def _read(self, containers: list[dict[str, Any]], data_root: Path,
              before: Sample | None) -> tuple[HostStats, Sample]:
        usage = {raw["Id"]: found for raw in containers if raw.get("State") == "running"
                 and (found := container_usage(self.cgroup_root, raw["Id"])) is not None}
        after = Sample(time.monotonic(), cpu_times((self.proc / "stat").read_text()), usage)
        memory_total, memory_used = memory_figures((self.proc / "meminfo").read_text())
        disk_total, disk_used = disk_figures(data_root if data_root.exists() else Path("/"))
        running = sum(1 for raw in containers if raw.get("State") == "running")
        return HostStats(
            at=time.time(), cpus=os.cpu_count() or 1,
            cpu_percent=busy_percent(before.cpu, after.cpu) if before else 0.0,
            memory_total_bytes=memory_total, memory_used_bytes=memory_used,
            disk_total_bytes=disk_total, disk_used_bytes=disk_used,
            containers_running=running, containers_stopped=len(containers) - running,
            services=service_usage(containers, before, after)), after
