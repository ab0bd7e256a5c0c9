"""Engine, sessions and transactions; SQLite tuned for several processes at once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql import Executable

from dockyard.kernel.audit import AuditedSession
from dockyard.kernel.context import current_request_id
from dockyard.kernel.settings import Settings
from dockyard.kernel.sqlite_dialect import DockyardSQLiteDialect

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]
OnCommit = Callable[[frozenset[str]], None]

# An execution option for a bulk UPDATE/DELETE that listeners of `on_commit` need not hear of
# (bookkeeping such as a last-use time).
UNWATCHED = "dockyard_unwatched"
ANY_TABLE = "*"  # what `on_commit` listeners hear when a statement's table is not known
_CHANGED = "dockyard_changed_tables"

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
        if conn.get_execution_options().get("dockyard_write", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # may be busy: raised as SQLAlchemy's error
        else:  # a deferred BEGIN takes no lock, so it skips SQLAlchemy's statement machinery
            conn.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]


def _changed(session: Session) -> set[str]:
    changed: set[str] = session.info.setdefault(_CHANGED, set())
    return changed


@event.listens_for(AuditedSession, "after_flush")
def _note_flushed(session: Session, _flush: UOWTransaction) -> None:
    """The tables of rows this flush updated or deleted (new rows narrow no cached state)."""
    rows = [o for o in session.dirty if session.is_modified(o)] + list(session.deleted)
    _changed(session).update(getattr(o, "__tablename__", ANY_TABLE) for o in rows)


@event.listens_for(AuditedSession, "do_orm_execute")
def _note_bulk(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and not state.execution_options.get(UNWATCHED):
        table = getattr(state.statement, "table", None)
        _changed(state.session).add(getattr(table, "name", ANY_TABLE))


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
        self._read_engine = self.engine.execution_options(dockyard_write=False)
        self._read_sessions = _session_maker(self._read_engine)
        self._on_commit: list[OnCommit] = []

    def on_commit(self, listener: OnCommit) -> None:
        """Call `listener` after each committed transaction of this object that updated or
        deleted rows, with their tables' names."""
        self._on_commit.append(listener)

    async def write(self, work: Work[T], *, info: dict[str, Any] | None = None) -> T:
        """Run `work` in a transaction that takes SQLite's write lock when it begins."""
        deadline = time.monotonic() + self.busy_timeout  # includes the turn of our other writers
        async with self._writers:
            return await self._retrying(lambda: self._run(self._sessions, work, info), deadline)

    async def read(self, work: Work[T]) -> T:
        """Run `work` in a transaction that never takes SQLite's write lock."""
        deadline = time.monotonic() + self.busy_timeout
        return await self._retrying(lambda: self._run(self._read_sessions, work, None), deadline)

    async def read_rows(self, statement: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        """The rows of one statement read as `read` would, without an ORM session (a third
        less time, for the hottest reads)."""
        deadline = time.monotonic() + self.busy_timeout
        return await self._retrying(lambda: self._rows(statement, params), deadline)

    async def dispose(self) -> None:
        await self.engine.dispose()

    @staticmethod
    async def _retrying(attempt_once: Callable[[], Awaitable[T]], deadline: float) -> T:
        for attempt in itertools.count(1):
            try:
                return await attempt_once()
            except OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not is_busy_error(exc) or remaining <= 0:
                    raise
                await asyncio.sleep(min(_backoff(attempt), remaining))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(
        self, maker: async_sessionmaker[AsyncSession], work: Work[T], info: dict[str, Any] | None
    ) -> T:
        async with maker() as session:
            session.info.update({"request_id": current_request_id(), **(info or {})})
            async with session.begin():
                result = await work(session)
            self._committed(frozenset(session.info.get(_CHANGED, ())))
            return result

    async def _rows(self, statement: Executable, params: dict[str, Any]) -> Sequence[Row[Any]]:
        conn = await self._read_engine.connect()
        try:
            async with conn.begin():
                return (await conn.execute(statement, params)).all()
        finally:  # as a session gives its connection back at commit: `async with` would close
            await conn.close()  # in a new task, and meanwhile others open more (pool churn)

    def _committed(self, tables: frozenset[str]) -> None:
        for listener in self._on_commit if tables else ():
            listener(tables)


def _session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=AuditedSession)


def _engine_options(url: str) -> dict[str, Any]:
    if is_sqlite(url):
        return {"connect_args": {"timeout": INLINE_BUSY_TIMEOUT_MS / 1000}}
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}


def _backoff(attempt: int) -> float:
    return float(min(0.25, 0.005 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
