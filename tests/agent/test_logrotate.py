"""The node's log files stay bounded: rotation by size and age on real files, a real process
appending to its log while it is copied and truncated, real nginx reopening its error log and
its request log (with USR1) while a client keeps requesting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import pytest

from dockyard.agent import logrotate, process
from dockyard.agent.logrotate import (
    Bound,
    LogRotator,
    Rotation,
    Watched,
    node_rotator,
    rotated,
    size_of,
)
from dockyard.agent.logtail import GRACE_READS, LogTail
from dockyard.agent.models import ContainerSummary, Site, Upstream
from dockyard.agent.nginx import NginxLayout
from dockyard.agent.proxy import Nginx
from dockyard.agent.request_metrics import RequestCollector
from dockyard.providers import local
from dockyard.providers.cluster import Cluster, ClusterSettings, NodeRecord
from tests.agent.conftest import eventually_true
from tests.ports import free_port

LINE = 100  # bytes of each line the writer appends


def sizes(path: Path, bound: Bound) -> list[int]:
    """The live file's size, then its rotated ones' that exist."""
    found = [path, *(rotated(path, n) for n in range(1, bound.files + 2))]
    return [p.stat().st_size for p in found if p.exists()]


def test_the_oldest_rotation_goes_and_the_others_move_up(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    bound = Bound(max_bytes=10, files=2, max_age_seconds=3600)
    rotator = LogRotator([Watched(log, reopen=log.touch)], bound, 1)
    for text in ("first line\n", "second line\n", "third line\n"):
        log.write_text(text)
        assert rotator.check() == [log]
    assert (log.exists(), rotated(log, 1).read_text(), rotated(log, 2).read_text()) == (
        True, "third line\n", "second line\n")
    assert not rotated(log, 3).exists()
    log.write_text("short\n")
    assert rotator.check() == []  # 6 bytes: not due


def test_a_file_older_than_the_age_rotates_and_old_rotations_go(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("a line\n")
    now = [1_000_000.0]
    rotation = Rotation(Bound(max_bytes=1000, files=2, max_age_seconds=60), lambda: now[0])
    assert not rotation.due(log)  # first seen now
    now[0] += 61
    assert rotation.due(log)
    rotated(log, 1).write_text("old\n")
    os.utime(rotated(log, 1), (now[0] - 61, now[0] - 61))
    rotation.rotated(log)
    assert not rotated(log, 1).exists()  # older than the age
    assert not rotation.due(log)  # the age counts from the rotation


class Writer:
    """A real process appending LINE-byte numbered lines to its standard output, a file
    opened for appending (as the cluster starts dockerd and the agent), one per `write`."""

    def __init__(self, log: Path) -> None:
        code = ("import sys\nfor n, _ in enumerate(sys.stdin):\n"
                f"    sys.stdout.write(f'{{n:08d}}'.ljust({LINE - 1}, '.') + '\\n')\n"
                "    sys.stdout.flush()\n")
        with log.open("ab") as out:
            self.child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                          stdout=out)
        self.log = log
        self.written = 0

    def write(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.write(b"\n")
        self.child.stdin.flush()
        self.written += 1
        eventually_true(lambda: self.log.read_text().endswith(f"{self.written - 1:08d}".ljust(
            LINE - 1, ".") + "\n"), "the line being written")

    def stop(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=10)


def test_a_file_another_process_appends_to_is_copied_truncated_and_stays_bounded(
        tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    bound = Bound(max_bytes=1000, files=2, max_age_seconds=3600)
    rotator = LogRotator([Watched(log)], bound, 1)
    writer = Writer(log)
    try:
        for _ in range(95):
            writer.write()
            rotator.check()
    finally:
        writer.stop()
    # rotated at 1,100 bytes (11 lines): 95 = 8 x 11 + 7 lines
    assert sizes(log, bound) == [7 * LINE, 11 * LINE, 11 * LINE]
    kept = b"".join(p.read_bytes() for p in (rotated(log, 2), rotated(log, 1), log))
    numbers = [int(line[:8]) for line in kept.splitlines()]
    assert numbers == list(range(95 - 29, 95))  # the newest lines, none lost, no gap


@pytest.fixture
def refused_site() -> Site:
    """A service whose one container refuses connections: the switch logs an error each time."""
    return Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=free_port())])


def test_nginx_error_logs_rotate_and_nginx_writes_the_new_one(
        nginx: Nginx, refused_site: Site) -> None:
    nginx.apply(refused_site, [refused_site])
    error_log = nginx.switch.layout.error_log
    bound = Bound(max_bytes=2000, files=2, max_age_seconds=3600)
    rotator = node_rotator(nginx, [], bound, 1)
    url = f"http://127.0.0.1:{nginx.layout.http_port}/"
    for _ in range(40):
        before = size_of(error_log)
        assert httpx.get(url, headers={"Host": "shop.test"}).status_code == 502
        eventually_true(partial(grew, error_log, before), "the switch logging the refusal")
        rotator.check()
    assert rotated(error_log, 2).exists()
    assert not rotated(error_log, 3).exists()
    for path in (rotated(error_log, 1), rotated(error_log, 2)):
        lines = path.read_bytes().splitlines(keepends=True)
        assert path.stat().st_size - len(lines[-1]) <= bound.max_bytes  # due after its last
    assert httpx.get(url, headers={"Host": "shop.test"}).status_code == 502
    eventually_true(lambda: error_log.exists() and error_log.stat().st_size > 0,
                    "nginx writing its reopened error log")


async def no_containers() -> list[ContainerSummary]:
    return []


async def test_the_request_log_rotates_under_a_steady_client_and_no_request_is_lost(
        nginx: Nginx, backend_port: int, tmp_path: Path) -> None:
    """The collector steps every 50 ms while a client requests without pause; the request
    log is rotated many times (two rotations kept) and every answered request is counted
    once."""
    site = Site(service="web", server_names=["shop.test"],
                upstreams=[Upstream(host="127.0.0.1", port=backend_port)])
    nginx.apply(site, [site])
    bound = Bound(max_bytes=3000, files=2, max_age_seconds=3600)
    collector = RequestCollector(nginx.edge, lambda: [site], no_containers,
                                 tmp_path / "requests.position", bound)
    rotations, inode = 0, None
    answered = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{nginx.layout.http_port}",
                                 headers={"Host": "shop.test"}) as client:
        async def keep_requesting() -> None:
            nonlocal answered
            while True:
                assert (await client.get("/")).status_code == 200
                answered += 1

        requests = asyncio.create_task(keep_requesting())
        while rotations < 5 and not requests.done():
            await collector.step(0)  # reads, counts and rotates; closes nothing
            rotations += inode not in (None, current := inode_of(collector.path))
            inode = current
            await asyncio.sleep(0.05)
        requests.cancel()
    assert rotations == 5, requests.exception() if requests.done() else "no rotation"
    for _ in range(100):  # the last lines: flushed within a second, read within GRACE_READS
        await collector.step(0)
        if counted(collector) >= answered:
            break
        await asyncio.sleep(0.1)
    assert counted(collector) in (answered, answered + 1)  # + the request cancelled in flight
    assert rotated(collector.path, 2).exists()
    assert not rotated(collector.path, 3).exists()


def grew(path: Path, before: int) -> bool:
    return size_of(path) > before


def inode_of(path: Path) -> int | None:
    return path.stat().st_ino if path.exists() else None


def counted(collector: RequestCollector) -> int:
    return sum(c.requests for c in collector.aggregator.open.values())


def test_a_cluster_node_agent_keeps_its_own_log_and_its_dockerds_bounded(tmp_path: Path) -> None:
    """The agent the namespace cluster would start (here on loopback), with a 1 KiB bound:
    its own log and its dockerd's, both appended to by processes it cannot signal, rotate."""
    node = NodeRecord(name="n1", ip="127.0.0.1", veth="v1", root=tmp_path / "n1",
                      agent_url="unused")
    launch = Cluster(ClusterSettings(root=tmp_path / "cluster")).launch(node)
    launch = replace(launch, port=free_port(), docker_host=f"unix://{tmp_path}/no.sock",
                     nginx_http_port=free_port(), nginx_https_port=free_port(),
                     extra_env={**launch.extra_env, "DOCKYARD_AGENT_LOG_MAX_BYTES": "1024",
                                "DOCKYARD_AGENT_LOG_ROTATE_SECONDS": "0.1"})
    dockerd_log = node.docker.log_file
    launch.state_dir.mkdir(parents=True)
    launch.log_file.write_text("an earlier agent's line\n" * 100)  # 2,400 bytes
    shout = "import sys; sys.stdout.write('a dockerd line\\n' * 200)"  # 3,000 bytes
    process.spawn([sys.executable, "-c", shout], log_file=dockerd_log).wait(timeout=30)
    local.install_agent_key(launch, "secret")
    pid = local.start_agent(launch)
    try:
        eventually_true(lambda: rotated(dockerd_log, 1).exists()
                        and rotated(launch.log_file, 1).exists(), "both logs rotating")
        assert rotated(dockerd_log, 1).read_text() == "a dockerd line\n" * 200
        assert size_of(dockerd_log) == 0
        assert rotated(launch.log_file, 1).read_text().startswith(
            "an earlier agent's line\n" * 100)
        assert size_of(launch.log_file) < 1024
    finally:
        os.kill(pid, signal.SIGTERM)
        eventually_true(lambda: not process.is_running(pid), "the agent stopping", within=30)
        Nginx(NginxLayout(launch.state_dir / "nginx", launch.nginx_http_port,
                          launch.nginx_https_port)).stop()


def test_a_restarted_tail_finishes_the_rotated_file_it_was_reading(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    log.write_bytes(b"one\ntwo\n")
    tail = LogTail(log)
    assert tail.read() == [b"one", b"two"]
    logrotate.rename(log, Bound(max_bytes=1, files=2, max_age_seconds=3600))
    kept = tail.position
    tail.close()  # the agent stopped right after it rotated; nginx flushed into the old file
    with rotated(log, 1).open("ab") as old:
        old.write(b"three\n")
    log.write_bytes(b"four\n")
    again = LogTail(log, kept, [rotated(log, 1), rotated(log, 2)])
    lines = [again.read() for _ in range(GRACE_READS + 2)]
    assert [line for batch in lines for line in batch] == [b"three", b"four"]


def test_an_agent_started_on_a_log_file_is_told_to_keep_it_bounded() -> None:
    launch = local.AgentLaunch(state_dir=Path("/c/n1/agent"), host="10.9.0.11", port=8421,
                               docker_host="unix:///c/n1/docker/docker.sock",
                               other_logs=(Path("/c/n1/docker/dockerd.log"),))
    assert launch.logs_env() == {
        "DOCKYARD_AGENT_LOG_FILES": '["/c/n1/agent/agent.log", "/c/n1/docker/dockerd.log"]'}
