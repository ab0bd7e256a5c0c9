"""Engine, sessions and transactions; SQLite tuned for several processes at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from dockyard.kernel.audit import AuditedSession
from dockyard.kernel.context import current_request_id
from dockyard.kernel.settings import Settings
from dockyard.kernel.sqlite_dialect import DockyardSQLiteDialect

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]

_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")
# How long one SQLite call may block the event loop waiting for a lock; longer waits are
# asynchronous retries in `Database`.
INLINE_BUSY_TIMEOUT_MS = 20

registry.register("sqlite.dockyard", DockyardSQLiteDialect.__module__, "DockyardSQLiteDialect")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def is_busy_error(exc: BaseException) -> bool:
    """True for SQLite's transient lock errors, the only ones worth retrying."""
    return isinstance(exc, OperationalError) and any(m in str(exc.orig) for m in _BUSY_MARKERS)


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, a short busy timeout, foreign keys, and BEGIN IMMEDIATE for transactions that write."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get("dockyard_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class Database:
    """One per process. `write` and `read` run a unit of work in its own transaction, retried
    with backoff while SQLite is busy, for up to `db_busy_timeout_ms`."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.sqlalchemy_url
        self.busy_timeout = settings.db_busy_timeout_ms / 1000
        self.engine = create_async_engine(self.url, **_engine_options(self.url))
        self._writers: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
        if is_sqlite(self.url):
            _tune_sqlite(self.engine)
            # SQLite has one writer at a time: ours queue here rather than block in BEGIN.
            self._writers = asyncio.Lock()
        self._sessions = _session_maker(self.engine)
        self._read_sessions = _session_maker(self.engine.execution_options(dockyard_write=False))

    async def write(self, work: Work[T], *, info: dict[str, Any] | None = None) -> T:
        """Run `work` in a transaction that takes SQLite's write lock when it begins."""
        deadline = time.monotonic() + self.busy_timeout  # includes the turn of our other writers
        async with self._writers:
            return await self._retrying(self._sessions, work, info, deadline)

    async def read(self, work: Work[T]) -> T:
        """Run `work` in a transaction that never takes SQLite's write lock."""
        deadline = time.monotonic() + self.busy_timeout
        return await self._retrying(self._read_sessions, work, None, deadline)

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def _retrying(
        self,
        maker: async_sessionmaker[AsyncSession],
        work: Work[T],
        info: dict[str, Any] | None,
        deadline: float,
    ) -> T:
        for attempt in itertools.count(1):
            try:
                return await self._run(maker, work, info)
            except OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not is_busy_error(exc) or remaining <= 0:
                    raise
                await asyncio.sleep(min(_backoff(attempt), remaining))
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _run(
        maker: async_sessionmaker[AsyncSession], work: Work[T], info: dict[str, Any] | None
    ) -> T:
        async with maker() as session:
            session.info.update({"request_id": current_request_id(), **(info or {})})
            async with session.begin():
                return await work(session)


def _session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=AuditedSession)


def _engine_options(url: str) -> dict[str, Any]:
    if is_sqlite(url):
        return {"connect_args": {"timeout": INLINE_BUSY_TIMEOUT_MS / 1000}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _backoff(attempt: int) -> float:
    return float(min(0.25, 0.005 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
