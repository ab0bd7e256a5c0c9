"""The agent's log buffer against the machine's real Docker: a container that prints lines."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from dockyard.agent import commands as cmd
from dockyard.agent.logbuffer import LogBuffer, LogEntry, exit_entries
from dockyard.agent.runtime import DockerRuntime
from tests.logs.conftest import run_printer


async def test_sync_copies_both_streams_tagged_and_only_once(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    name = await run_printer(runtime)
    await buffer.sync_container(runtime, name, {"dockyard.service": "proj-web",
                                                "dockyard.deployment": "dep1", "other": "x"})
    await buffer.sync_container(runtime, name, {"dockyard.service": "proj-web"})
    page = buffer.read(after=0, limit=100)
    assert [e.line for e in page.entries if e.stream == "stdout"] == ["out 0", "out 1", "out 2"]
    assert [e.line for e in page.entries if e.stream == "stderr"] == ["err line"]
    assert [e.seq for e in page.entries] == [1, 2, 3, 4]
    assert page.entries[0].service == "proj-web"
    assert page.entries[0].labels == {"dockyard.service": "proj-web",
                                      "dockyard.deployment": "dep1"}
    assert [e.seq for e in buffer.read(after=3, limit=100).entries] == [4]


async def test_cursor_and_sequence_survive_a_restart_of_the_agent(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    name = await run_printer(runtime)
    await LogBuffer(tmp_path, 1024**2).sync_container(runtime, name, {})
    reopened = LogBuffer(tmp_path, 1024**2)
    assert await reopened.sync_container(runtime, name, {}) == 0
    assert reopened.read(0, 100).last_seq == 4


async def test_the_buffer_is_bounded_and_says_what_was_dropped(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    script = "for i in range(2000):\n    print('x' * 100, i)\n"
    name = await run_printer(runtime, script)
    buffer = LogBuffer(tmp_path, 128 * 1024)
    await buffer.sync_container(runtime, name, {})
    on_disk = sum(f.stat().st_size for f in tmp_path.glob("journal.*"))  # noqa: ASYNC240
    assert on_disk <= 128 * 1024 + 64 * 1024
    page = buffer.read(0, 10)
    assert page.last_seq == 2000
    assert page.first_seq > 1


async def test_sync_finds_every_managed_container(runtime: DockerRuntime, tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    names = await asyncio.gather(run_printer(runtime), run_printer(runtime))
    assert await buffer.sync(runtime) >= 8
    mine = {e.container for e in buffer.read(0, 10_000).entries} & set(names)
    assert mine == set(names)


async def test_a_container_that_ended_gets_a_line_with_its_exit_code(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    assert await buffer.sync_exits(runtime) == 0  # the first call only starts the cursor
    name = await run_printer(runtime, "raise SystemExit(3)",
                             labels={"dockyard.process-type": "worker"})
    [entry] = await exit_lines_of(name, buffer, runtime)
    assert (entry.container, entry.service, entry.stream, entry.line) == (
        name, "shop-web", "exit", "process exited with code 3")
    assert entry.labels["dockyard.process-type"] == "worker"
    assert await LogBuffer(tmp_path, 1024**2).sync_exits(runtime) == 0  # not twice


def test_an_oom_kill_is_named_and_one_off_runs_are_left_out() -> None:
    def event(action: str, name: str, **attributes: str) -> dict[str, object]:
        return {"Action": action, "timeNano": 1_796_000_000_000_000_000,
                "Actor": {"Attributes": {"name": name, **attributes}}}

    entries = exit_entries([
        event("oom", "shop-web-1"),
        event("die", "shop-web-1", exitCode="137", **{"dockyard.service": "shop-web"}),
        event("die", "shop-web-run-1", exitCode="0", **{"dockyard.one-off": "true"}),
        event("die", "shop-web-1", exitCode="0"),
        event("die", "shop-worker-1", exitCode="137"),
        event("oom", "shop-worker-1"),  # Docker may tell the cause after the exit
    ])
    oom_line = ("process exited with code 137 (killed by the kernel for using more than its "
                "memory limit: OOM)")
    assert [(e.container, e.line) for e in entries] == [
        ("shop-web-1", oom_line), ("shop-web-1", "process exited with code 0"),
        ("shop-worker-1", oom_line)]
    assert entries[0].labels == {"dockyard.service": "shop-web"}


async def exit_lines_of(name: str, buffer: LogBuffer, runtime: DockerRuntime
                        ) -> list[LogEntry]:
    """Exit lines come once an `oom` event can no longer follow the exit (2 s)."""
    deadline = time.monotonic() + 30
    while not (found := [e for e in buffer.read(0, 100).entries if e.container == name]):
        assert time.monotonic() < deadline, "no exit line within 30 s"
        await asyncio.sleep(0.2)
        await buffer.sync_exits(runtime)
    return found


def appended(buffer: LogBuffer, first: int, count: int) -> None:
    buffer.append([LogEntry(seq=seq, container="c", service="s", stream="stdout",
                            time=datetime.now(UTC), line=f"line {seq} " + "x" * 60)
                   for seq in range(first, first + count)])


def test_a_reader_paging_on_gets_every_line_once_across_dropped_segments(tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 16 * 1024)  # segments of 8 KiB: ~45 lines each
    appended(buffer, 1, 30)
    seen = [e.seq for e in buffer.read(0, 20).entries]
    appended(buffer, 31, 30)  # the newer segment fills: it becomes the older one
    while page := buffer.read(seen[-1], 20).entries:
        seen += [e.seq for e in page]
    assert seen == list(range(1, 61))
    appended(buffer, 61, 100)  # the segments the reader was in are dropped
    page = buffer.read(60, 1000)
    assert page.first_seq > 61
    assert page.entries[0].seq == page.first_seq
    assert page.entries[-1].seq == 160


def test_a_reader_elsewhere_than_the_last_page_is_served_from_its_own_cursor(
        tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    appended(buffer, 1, 50)
    buffer.read(0, 10)
    assert [e.seq for e in buffer.read(40, 3).entries] == [41, 42, 43]
    assert [e.seq for e in buffer.read(5, 2).entries] == [6, 7]
    assert [e.seq for e in LogBuffer(tmp_path, 1024**2).read(48, 10).entries] == [49, 50]


async def test_the_cursors_of_removed_containers_are_forgotten(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, 1024**2)
    kept, removed = await asyncio.gather(run_printer(runtime), run_printer(runtime))
    await buffer.sync(runtime)
    await runtime.run(cmd.remove_container(removed))
    await buffer.sync(runtime)
    containers = {key.rpartition("/")[0]
                  for key in json.loads((tmp_path / "cursors.json").read_text())}
    assert kept in containers
    assert removed not in containers
