"""Machine-wide file locks, shared and exclusive, between real processes: another Python
process takes the lock with flock and keeps it until its stdin closes (or it is killed)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dockyard.kernel import host_lock

RETRY = 0.01
HOLDER = """
import fcntl, sys
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_SH if sys.argv[2] == "shared" else fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@asynccontextmanager
async def other_process_holding(path: Path, shared: bool
                                ) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another process that holds the lock at `path` until the block ends."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(path), "shared" if shared else "exclusive",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdin
    assert child.stdout
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 10) == b"held\n"
        yield child
    finally:
        if child.returncode is None:
            child.stdin.close()
        await child.wait()


class Asker:
    """This process asking for the lock in a task: `waited` is set once it has waited
    `notice_after` seconds, `entered` once it holds the lock; it lets go when `done` is set."""

    def __init__(self, path: Path, shared: bool, notice_after: float = 0.05) -> None:
        self.waited, self.entered, self.done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.notices = 0
        notice = host_lock.Notice(notice_after, self._say)
        self.task = asyncio.create_task(self._hold(path, shared, notice))

    async def _say(self) -> None:
        self.notices += 1
        self.waited.set()

    async def _hold(self, path: Path, shared: bool, notice: host_lock.Notice) -> None:
        async with host_lock.held(path, RETRY, shared=shared, notice=notice):
            self.entered.set()
            await self.done.wait()

    async def finish(self) -> None:
        self.done.set()
        await asyncio.wait_for(self.task, 10)


async def test_shared_holders_hold_at_once(tmp_path: Path) -> None:
    lock = tmp_path / "registry.lock"
    async with other_process_holding(lock, shared=True):
        asker = Asker(lock, shared=True, notice_after=60)
        await asyncio.wait_for(asker.entered.wait(), 10)
        await asker.finish()
    assert asker.notices == 0


@pytest.mark.parametrize(("held_shared", "asked_shared"), [(True, False), (False, True),
                                                           (False, False)])
async def test_an_asker_waits_for_a_conflicting_holder_then_holds(
        tmp_path: Path, held_shared: bool, asked_shared: bool) -> None:
    lock = tmp_path / "registry.lock"
    async with other_process_holding(lock, shared=held_shared) as holder:
        asker = Asker(lock, shared=asked_shared)
        await asyncio.wait_for(asker.waited.wait(), 10)
        assert not asker.entered.is_set()
        assert holder.stdin
        holder.stdin.close()
        await holder.wait()
        await asyncio.wait_for(asker.entered.wait(), 10)
    await asker.finish()
    assert asker.notices == 1  # said once, however long it waited


async def test_the_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    lock = tmp_path / "registry.lock"
    async with other_process_holding(lock, shared=False) as holder:
        asker = Asker(lock, shared=False)
        await asyncio.wait_for(asker.waited.wait(), 10)
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asker.entered.wait(), 10)
    await asker.finish()


async def test_an_asker_gives_up_after_its_limit(tmp_path: Path) -> None:
    lock = tmp_path / "registry.lock"
    async with other_process_holding(lock, shared=True):
        with pytest.raises(TimeoutError):
            async with host_lock.held(lock, RETRY, give_up_seconds=0.1):
                pytest.fail("took an exclusive lock that another process holds shared")
        async with host_lock.held(lock, RETRY, shared=True, give_up_seconds=10):
            pass  # the shared lock was never in question


async def test_two_holders_in_one_process_conflict_too(tmp_path: Path) -> None:
    lock = tmp_path / "registry.lock"
    async with host_lock.held(lock, RETRY):
        with pytest.raises(TimeoutError):
            async with host_lock.held(lock, RETRY, shared=True, give_up_seconds=0.1):
                pytest.fail("took a shared lock while this process holds it exclusively")
    async with host_lock.held(lock, RETRY, shared=True, give_up_seconds=10):
        pass  # freed when the first holder's block ended



PROGRAM = """
import pathlib, sys, time
folder = pathlib.Path(sys.argv[1])
(folder / "started").touch()
while not (folder / "end").exists():
    time.sleep(0.01)
"""
RUNNER = f"""
PROGRAM = {PROGRAM!r}
import asyncio, sys
from pathlib import Path
from dockyard.agent import process
from dockyard.kernel import host_lock

async def main() -> None:
    async with host_lock.held(Path(sys.argv[1]), 0.01) as fd:
        process.run([sys.executable, "-c", PROGRAM, sys.argv[2]], pass_fds=[fd], timeout=60)

asyncio.run(main())
"""


async def test_a_program_given_the_lock_holds_it_after_its_runner_is_killed(
        tmp_path: Path) -> None:
    """As the registry's garbage collection does when the worker that ran it dies."""
    lock = tmp_path / "registry.lock"
    runner = await asyncio.create_subprocess_exec(sys.executable, "-c", RUNNER, str(lock),
                                                  str(tmp_path))
    while not (tmp_path / "started").exists():  # noqa: ASYNC110 - made by another process
        await asyncio.sleep(RETRY)
    runner.send_signal(signal.SIGKILL)
    await runner.wait()
    try:
        asker = Asker(lock, shared=False)
        await asyncio.wait_for(asker.waited.wait(), 10)
        assert not asker.entered.is_set()
    finally:
        (tmp_path / "end").touch()  # the program ends, whatever happened
    await asyncio.wait_for(asker.entered.wait(), 10)
    await asker.finish()
