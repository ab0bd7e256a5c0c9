"""SQLite tuned for several processes: pragmas, BEGIN IMMEDIATE, and waiting for another
process's lock asynchronously, bounded by a deadline, without ever blocking the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from dockyard.kernel.db import INLINE_BUSY_TIMEOUT_MS, Database, is_busy_error
from tests.conftest import make_settings

# Another process: takes the write lock, says so, and keeps it until told on stdin.
LOCK_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


@pytest.fixture
async def sqlite_db(tmp_path):
    db = Database(make_settings(tmp_path, None, db_busy_timeout_ms=10_000))
    await db.write(lambda s: s.execute(text("CREATE TABLE notes (body TEXT)")))
    yield db
    await db.dispose()


@asynccontextmanager
async def another_process_holding_the_write_lock(path: Path) -> AsyncIterator[None]:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCK_HOLDER, str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert await holder.stdout.readline() == b"locked\n"
        yield
    finally:
        holder.stdin.write(b"\n")
        await holder.stdin.drain()
        assert await holder.wait() == 0


async def longest_stall(stop: asyncio.Event) -> float:
    """The longest the event loop went without running this task, until `stop` is set."""
    longest, last = 0.0, time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


def counting_insert(calls: list[int], ready: asyncio.Event, after: int):  # type: ignore[no-untyped-def]
    """A write that counts its attempts and sets `ready` once it has made `after` of them."""

    async def insert(s):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) >= after:
            ready.set()
        await s.execute(text("INSERT INTO notes VALUES ('written')"))

    return insert


async def notes(db: Database) -> list[str]:
    async def tx(s):  # type: ignore[no-untyped-def]
        return list((await s.scalars(text("SELECT body FROM notes"))).all())

    return await db.read(tx)


async def test_pragmas_are_set_on_every_connection(sqlite_db):
    async def pragmas(s):  # type: ignore[no-untyped-def]
        names = ("journal_mode", "busy_timeout", "foreign_keys")
        return [(await s.execute(text(f"PRAGMA {n}"))).scalar() for n in names]

    assert await sqlite_db.read(pragmas) == ["wal", INLINE_BUSY_TIMEOUT_MS, 1]
    assert INLINE_BUSY_TIMEOUT_MS <= 50  # how long one blocked call may hold the event loop
    assert sqlite_db.busy_timeout == 10.0  # the deadline of all the retries, from the settings


async def test_write_transactions_take_the_lock_when_they_begin(sqlite_db, tmp_path):
    """A write transaction that has only read so far already holds the write lock."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(s):  # type: ignore[no-untyped-def]
        await s.execute(text("SELECT 1"))
        holding.set()
        await release.wait()

    task = asyncio.create_task(sqlite_db.write(hold))
    await holding.wait()
    other = sqlite3.connect(tmp_path / "dockyard.db", timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.close()
    release.set()
    await task


async def test_reads_do_not_take_the_write_lock(sqlite_db, tmp_path):
    async def one(s):  # type: ignore[no-untyped-def]
        return (await s.execute(text("SELECT 1"))).scalar()

    async with another_process_holding_the_write_lock(tmp_path / "dockyard.db"):
        assert await sqlite_db.read(one) == 1


async def test_a_blocked_writer_waits_without_blocking_the_loop(sqlite_db, tmp_path):
    """While another process holds the lock, the writer retries and the loop runs on;
    once the lock is released, the write goes through."""
    calls: list[int] = []
    retried, stop = asyncio.Event(), asyncio.Event()
    async with another_process_holding_the_write_lock(tmp_path / "dockyard.db"):
        stall = asyncio.create_task(longest_stall(stop))
        writer = asyncio.create_task(sqlite_db.write(counting_insert(calls, retried, after=4)))
        async with asyncio.timeout(10):  # fails, rather than hangs, if the writer gave up
            await retried.wait()
        stop.set()
        assert not writer.done()
        assert await stall < 0.5  # each blocking attempt lasts ~INLINE_BUSY_TIMEOUT_MS
    await writer
    assert await notes(sqlite_db) == ["written"]


async def test_waiting_for_the_lock_is_bounded_by_the_deadline(sqlite_db, tmp_path):
    sqlite_db.busy_timeout = 0.4  # the settings allow no less than 10 s
    calls: list[int] = []
    async with another_process_holding_the_write_lock(tmp_path / "dockyard.db"):
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            await sqlite_db.write(counting_insert(calls, asyncio.Event(), after=1))
        waited = time.monotonic() - started
    assert 0.4 <= waited < 3.0
    assert len(calls) > 2
    assert await notes(sqlite_db) == []


async def test_writers_of_one_process_take_turns_instead_of_retrying(sqlite_db):
    holding, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def hold(s):  # type: ignore[no-untyped-def]
        await s.execute(text("INSERT INTO notes VALUES ('first')"))
        holding.set()
        await release.wait()

    first = asyncio.create_task(sqlite_db.write(hold))
    await holding.wait()
    second = asyncio.create_task(sqlite_db.write(counting_insert(calls, asyncio.Event(), 1)))
    await asyncio.sleep(0)  # the second writer's turn: it waits, rather than try to BEGIN
    assert calls == []
    release.set()
    await asyncio.gather(first, second)
    assert calls == [1]
    assert sorted(await notes(sqlite_db)) == ["first", "written"]


async def test_busy_errors_from_the_work_are_retried_others_are_not(sqlite_db):
    attempts: list[int] = []

    async def flaky(s):  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    assert await sqlite_db.write(flaky) == "done"
    assert len(attempts) == 3

    async def broken(s):  # type: ignore[no-untyped-def]
        attempts.append(1)
        await s.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(OperationalError, match="no such table"):
        await sqlite_db.write(broken)
    assert len(attempts) == 4


def test_busy_error_detection():
    locked = OperationalError("x", {}, sqlite3.OperationalError("database is locked"))
    other = OperationalError("x", {}, sqlite3.OperationalError("no such table: x"))
    assert is_busy_error(locked)
    assert not is_busy_error(other)
