"""SQLite tuned for several processes: pragmas, BEGIN IMMEDIATE, bounded retry on busy."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from dockyard.kernel.db import Database, is_busy_error
from tests.conftest import make_settings


@pytest.fixture
async def sqlite_db(tmp_path):
    db = Database(make_settings(tmp_path, None, db_busy_timeout_ms=10_000))
    yield db
    await db.dispose()


async def test_pragmas_are_set_on_every_connection(sqlite_db):
    async def pragmas(s):  # type: ignore[no-untyped-def]
        names = ("journal_mode", "busy_timeout", "foreign_keys")
        return [(await s.execute(text(f"PRAGMA {n}"))).scalar() for n in names]

    assert await sqlite_db.read(pragmas) == ["wal", 10_000, 1]


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

    assert await sqlite_db.read(one) == 1  # the file exists, in WAL mode
    await sqlite_db.dispose()
    holder = sqlite3.connect(tmp_path / "dockyard.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    assert await sqlite_db.read(one) == 1
    holder.execute("ROLLBACK")
    holder.close()


async def test_busy_writes_are_retried_then_succeed(tmp_path):
    db = Database(make_settings(tmp_path, None, db_busy_timeout_ms=10_000, db_retry_attempts=8))
    attempts = []

    async def flaky(s):  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    assert await db.write(flaky) == "done"
    assert len(attempts) == 3
    await db.dispose()


async def test_retries_are_bounded_and_other_errors_are_not_retried(tmp_path):
    db = Database(make_settings(tmp_path, None, db_retry_attempts=2))
    calls = []

    async def always_busy(s):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise OperationalError("x", {}, sqlite3.OperationalError("database is locked"))

    with pytest.raises(OperationalError):
        await db.write(always_busy)
    assert len(calls) == 2

    async def broken(s):  # type: ignore[no-untyped-def]
        calls.append(1)
        await s.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(OperationalError):
        await db.write(broken)
    assert len(calls) == 3
    await db.dispose()


def test_busy_error_detection():
    locked = OperationalError("x", {}, sqlite3.OperationalError("database is locked"))
    other = OperationalError("x", {}, sqlite3.OperationalError("no such table: x"))
    assert is_busy_error(locked)
    assert not is_busy_error(other)
