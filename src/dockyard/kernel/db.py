"""Engine, sessions and transactions; SQLite tuned for several processes at once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
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

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]

_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def is_busy_error(exc: BaseException) -> bool:
    """True for SQLite's transient lock errors, the only ones worth retrying."""
    return isinstance(exc, OperationalError) and any(m in str(exc.orig) for m in _BUSY_MARKERS)


def _tune_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN IMMEDIATE for transactions that write."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get("dockyard_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class Database:
    """One per process. `write` and `read` run a unit of work in its own transaction."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.sqlalchemy_url
        self.retry_attempts = settings.db_retry_attempts
        self.engine = create_async_engine(self.url, **_engine_options(self.url))
        if is_sqlite(self.url):
            _tune_sqlite(self.engine, settings.db_busy_timeout_ms)
        self._sessions = _session_maker(self.engine)
        self._read_sessions = _session_maker(self.engine.execution_options(dockyard_write=False))

    async def write(self, work: Work[T], *, info: dict[str, Any] | None = None) -> T:
        """Run `work` in a write transaction, retried with backoff while SQLite is busy."""
        for attempt in range(1, self.retry_attempts + 1):
            try:
                return await self._run(self._sessions, work, info)
            except OperationalError as exc:
                if not is_busy_error(exc) or attempt == self.retry_attempts:
                    raise
                await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def read(self, work: Work[T]) -> T:
        """Run `work` in a transaction that never takes SQLite's write lock."""
        return await self._run(self._read_sessions, work, None)

    async def dispose(self) -> None:
        await self.engine.dispose()

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
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _backoff(attempt: int) -> float:
    return float(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
