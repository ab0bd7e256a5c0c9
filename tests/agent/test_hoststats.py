"""Host figures: /proc and cgroup files read as data (both cgroup versions), then a real
container on the machine's Docker seen by the sampler and through the agent's endpoint."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from dockyard.agent import auth
from dockyard.agent.app import create_app
from dockyard.agent.client import NodeAgentClient
from dockyard.agent.hoststats import (
    ContainerUsage,
    CpuTimes,
    HostSampler,
    Sample,
    busy_percent,
    cgroup_dirs,
    container_usage,
    cpu_times,
    memory_figures,
    service_usage,
)
from dockyard.agent.models import ImageRef
from dockyard.agent.runtime import DockerRuntime
from dockyard.agent.settings import AgentSettings
from dockyard.models.app_metrics import HostStats, ServiceUsage
from tests.agent.conftest import SECRET

SERVICE = "hoststats-test"
MIB = 1024**2


def test_cpu_is_busy_time_over_all_time_between_two_samples() -> None:
    before = cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n")
    after = cpu_times("cpu  250 0 100 1000 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n")
    assert (before, after) == (CpuTimes(busy=150, total=1000), CpuTimes(busy=350, total=1400))
    assert busy_percent(before, after) == 50.0
    assert busy_percent(after, after) == 0.0


def test_memory_used_is_what_is_not_available() -> None:
    text = "MemTotal: 16000 kB\nMemFree: 1000 kB\nMemAvailable: 6000 kB\nHugePages_Total: 0\n"
    assert memory_figures(text) == (16000 * 1024, 10000 * 1024)


def test_the_cgroup_of_a_container_under_either_version_and_driver(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    (v2 / "cgroup.controllers").parent.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory\n")
    assert cgroup_dirs(v2, "abc", "memory") == [
        v2 / "docker/abc", v2 / "system.slice/docker-abc.scope"]
    v1 = tmp_path / "v1"
    assert cgroup_dirs(v1, "abc", "cpuacct") == [
        v1 / "cpuacct/docker/abc", v1 / "cpuacct/system.slice/docker-abc.scope",
        v1 / "cpu,cpuacct/docker/abc", v1 / "cpu,cpuacct/system.slice/docker-abc.scope"]
    assert cgroup_dirs(v1, "abc", "memory") == [
        v1 / "memory/docker/abc", v1 / "memory/system.slice/docker-abc.scope"]


def write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def test_cpu_and_memory_of_a_container_from_v1_and_v2_files(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    write(v1 / "cpu,cpuacct/docker/abc", {"cpuacct.usage": "2500000000\n"})
    write(v1 / "memory/docker/abc", {"memory.usage_in_bytes": str(300 * MIB),
                                     "memory.stat": f"cache 9\ntotal_inactive_file {100 * MIB}\n"})
    assert container_usage(v1, "abc") == ContainerUsage(cpu_ns=2_500_000_000, memory=200 * MIB)
    v2 = tmp_path / "v2"
    write(v2, {"cgroup.controllers": "cpu memory\n"})
    write(v2 / "system.slice/docker-abc.scope", {
        "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\n",
        "memory.current": str(80 * MIB), "memory.stat": f"anon 1\ninactive_file {30 * MIB}\n"})
    assert container_usage(v2, "abc") == ContainerUsage(cpu_ns=1_500_000_000, memory=50 * MIB)
    assert container_usage(v2, "gone") is None


def test_service_usage_adds_up_its_running_containers() -> None:
    containers = [{"Id": "a", "State": "running", "Labels": {"dockyard.service": "web"}},
                  {"Id": "b", "State": "running", "Labels": {"dockyard.service": "web"}},
                  {"Id": "c", "State": "exited", "Labels": {"dockyard.service": "web"}},
                  {"Id": "d", "State": "running", "Labels": {}}]
    before = Sample(10.0, CpuTimes(0, 0), {"a": ContainerUsage(0, 5), "b": ContainerUsage(0, 5)})
    after = Sample(12.0, CpuTimes(0, 0), {"a": ContainerUsage(1_000_000_000, 10 * MIB),
                                          "b": ContainerUsage(3_000_000_000, 20 * MIB)})
    assert service_usage(containers, before, after) == [
        ServiceUsage(service="web", containers=2, cpu_percent=200.0, memory_bytes=30 * MIB)]
    assert service_usage(containers, None, after)[0].cpu_percent == 0.0


# On the machine's Docker: a container that holds 64 MiB and keeps a CPU a little busy.

HOLDER = ("import time\nheld = b'x' * (64 * 1024 * 1024)\n"
          "while True:\n    sum(range(100000))\n    time.sleep(0.01)\n")


@pytest.fixture
def busy_container(docker_host: str, python_image: ImageRef) -> Iterator[str]:
    api = docker.APIClient(base_url=docker_host)
    created = api.create_container(
        python_image.reference, command=["python3", "-c", HOLDER], name=f"{SERVICE}-1",
        labels={"dockyard.managed": "true", "dockyard.service": SERVICE})
    try:
        api.start(created["Id"])
        yield created["Id"]
    finally:
        api.remove_container(created["Id"], force=True)
        api.close()


def usage_of(stats: HostStats) -> ServiceUsage | None:
    return next((s for s in stats.services if s.service == SERVICE), None)


def memory_of(stats: HostStats) -> int:
    return usage.memory_bytes if (usage := usage_of(stats)) else 0


def cpu_of(stats: HostStats) -> float:
    return usage.cpu_percent if (usage := usage_of(stats)) else 0.0


async def sampled_until(sampler: HostSampler, wanted: Callable[[HostStats], bool]
                        ) -> HostStats:
    for _ in range(300):
        stats = await sampler.sample()
        if wanted(stats):
            return stats
        await asyncio.sleep(0.1)
    pytest.fail("the container's figures never showed")


async def test_the_sampler_sees_a_real_container_use_memory_and_cpu(
        docker_host: str, busy_container: str) -> None:
    sampler = HostSampler(DockerRuntime(docker_host))
    stats = await sampled_until(sampler, lambda s: memory_of(s) >= 64 * MIB)
    usage = usage_of(stats)
    assert usage is not None
    assert usage.containers == 1
    assert stats.containers_running >= 1
    later = await sampled_until(sampler, lambda s: cpu_of(s) > 0)
    assert 0 < later.memory_used_bytes <= later.memory_total_bytes
    assert 0 < later.disk_used_bytes <= later.disk_total_bytes
    assert later.cpus == os.cpu_count()


async def test_the_host_endpoint_answers_through_the_real_agent_app(
        tmp_path: Path, docker_host: str, busy_container: str) -> None:
    settings = AgentSettings(state_dir=tmp_path / "agent", docker_host=docker_host)
    auth.write_key_file(settings.key_file, auth.derive_agent_key(SECRET))
    transport = httpx.ASGITransport(app=create_app(settings))
    async with NodeAgentClient("http://agent.test", SECRET, transport=transport) as agent:
        stats = await agent.host_stats()
    usage = usage_of(stats)
    assert usage is not None
    assert usage.containers == 1
    with docker.APIClient(base_url=docker_host) as api:
        data = os.statvfs(api.info()["DockerRootDir"])
    assert stats.disk_total_bytes == data.f_blocks * data.f_frsize
