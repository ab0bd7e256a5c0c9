"""`sqlite+dockyard`: the standard-library sqlite3 driver, offered to SQLAlchemy's asyncio layer.

Nothing here awaits, so each statement runs inline on the event loop's thread, with none of
the thread hop per call that aiosqlite pays. That is only acceptable because no call may block
for long: connections keep a short busy timeout, and `Database` waits for locks asynchronously.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any, Self

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import ConnectArgsType, DBAPICursor
from sqlalchemy.util import await_only


class _Cursor(sqlite3.Cursor):
    """Fetches every row as it executes, as aiosqlite does: no statement is left running at
    COMMIT, and a result read after its transaction ended still has its rows."""

    _rows: deque[Any] = deque()

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        super().execute(sql, parameters)
        self._rows = deque(super().fetchall() if self.description else ())
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    def fetchall(self) -> list[Any]:
        rows, self._rows = list(self._rows), deque()
        return rows

    async def _async_soft_close(self) -> None:
        """Asked for by SQLAlchemy's asyncio layer; the rows are already fetched."""


async def _nothing() -> None:
    pass


class _ExecutionContext(SQLiteExecutionContext):
    def pre_exec(self) -> None:
        await_only(_nothing())  # AsyncConnection.execute insists that a driver awaited something

    def create_default_cursor(self) -> DBAPICursor:
        return self._dbapi_connection.cursor(_Cursor)


class DockyardSQLiteDialect(SQLiteDialect_pysqlite):
    driver = "dockyard"
    supports_statement_cache = True
    is_async = True  # accepted by create_async_engine; its calls simply never suspend
    has_terminate = True  # closing a sqlite3 connection is safe anywhere, even in the GC
    execution_ctx_cls = _ExecutionContext

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool  # one in-memory database, shared

    def create_connect_args(self, url: URL) -> ConnectArgsType:
        args, options = super().create_connect_args(url)
        options["check_same_thread"] = False  # the pool may close it from the GC's thread
        return args, options


dialect = DockyardSQLiteDialect
