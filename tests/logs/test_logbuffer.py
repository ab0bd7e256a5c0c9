"""The agent's log buffer against the machine's real Docker: a container that prints lines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.agent import commands as cmd
from dockyard.agent.logbuffer import LogBuffer
from dockyard.agent.runtime import DockerRuntime

IMAGE = "dockyard/python:bookworm"
PRINTER = ("import sys\nfor i in range(3):\n    print('out', i, flush=True)\n"
           "print('err line', file=sys.stderr, flush=True)\n")


@pytest.fixture
async def runtime() -> AsyncIterator[DockerRuntime]:
    docker = DockerRuntime("unix:///var/run/docker.sock")
    yield docker
    docker.close()


async def run_printer(runtime: DockerRuntime, script: str = PRINTER) -> str:
    name = f"dy-logtest-{uuid.uuid4().hex[:8]}"
    labels = cmd.owned_labels("proj-web", {"dockyard.deployment": "dep1"})
    await runtime.run(cmd.EngineCall("create_container", {
        "image": IMAGE, "name": name, "command": ["python3", "-c", script], "labels": labels}))
    await runtime.run(cmd.EngineCall("start", {"container": name}))
    await runtime.run(cmd.EngineCall("wait", {"container": name, "timeout": 30}))
    return name


async def remove(runtime: DockerRuntime, name: str) -> None:
    await runtime.run(cmd.EngineCall("remove_container", {"container": name, "force": True}))


async def test_sync_copies_both_streams_tagged_and_only_once(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    name = await run_printer(runtime)
    try:
        await buffer.sync_container(runtime, name, {"dockyard.service": "proj-web",
                                                    "dockyard.deployment": "dep1"})
        await buffer.sync_container(runtime, name, {"dockyard.service": "proj-web"})
    finally:
        await remove(runtime, name)
    page = buffer.read(after=0, limit=100)
    assert [(e.stream, e.line) for e in page.entries] == [
        ("stdout", "out 0"), ("stdout", "out 1"), ("stdout", "out 2"), ("stderr", "err line")]
    assert [e.seq for e in page.entries] == [1, 2, 3, 4]
    assert page.entries[0].service == "proj-web"
    assert page.entries[0].labels["dockyard.deployment"] == "dep1"
    assert buffer.read(after=3, limit=100).entries[0].line == "err line"


async def test_cursor_and_sequence_survive_a_restart_of_the_agent(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    name = await run_printer(runtime)
    try:
        await LogBuffer(tmp_path, 1024**2).sync_container(runtime, name, {})
        reopened = LogBuffer(tmp_path, 1024**2)
        assert await reopened.sync_container(runtime, name, {}) == 0
    finally:
        await remove(runtime, name)
    assert reopened.read(0, 100).last_seq == 4


async def test_the_buffer_is_bounded_and_says_what_was_dropped(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    script = "for i in range(2000):\n    print('x' * 100, i)\n"
    name = await run_printer(runtime, script)
    buffer = LogBuffer(tmp_path, 128 * 1024)
    try:
        await buffer.sync_container(runtime, name, {})
    finally:
        await remove(runtime, name)
    on_disk = sum(f.stat().st_size for f in tmp_path.glob("journal.*"))  # noqa: ASYNC240
    assert on_disk <= 128 * 1024 + 64 * 1024
    page = buffer.read(0, 10)
    assert page.last_seq == 2000
    assert page.first_seq > 1


async def test_sync_finds_every_managed_container(runtime: DockerRuntime, tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    names = await asyncio.gather(run_printer(runtime), run_printer(runtime))
    try:
        assert await buffer.sync(runtime) >= 8
    finally:
        for name in names:
            await remove(runtime, name)
    mine = {e.container for e in buffer.read(0, 10_000).entries} & set(names)
    assert mine == set(names)
