"""The `sqlite+dockyard` dialect leans on SQLAlchemy internals (kernel/sqlite_dialect.py).
These tests exercise each of them, so a SQLAlchemy release that changes one fails here, with
a message naming the version, rather than somewhere deep in a request."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import pool, text
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import default, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import dockyard.kernel.db  # noqa: F401  (registers sqlite+dockyard)
from dockyard.kernel import sqlite_dialect
from dockyard.kernel.sqlite_dialect import DockyardSQLiteDialect


def broken(what: str) -> str:
    return (f"SQLAlchemy {sqlalchemy.__version__}: {what}. The sqlite+dockyard dialect "
            "(src/dockyard/kernel/sqlite_dialect.py) relies on it: adapt the dialect, or keep "
            "the SQLAlchemy version pinned in constraints.txt")


@pytest.mark.parametrize(("owner", "name"), [
    (SQLiteDialect_pysqlite, "_is_url_file_db"),
    (SQLiteDialect_pysqlite, "create_connect_args"),
    (SQLiteDialect_pysqlite, "get_pool_class"),
    (SQLiteExecutionContext, "pre_exec"),
    (SQLiteExecutionContext, "create_default_cursor"),
    (default.DefaultDialect, "do_terminate"),
    (default.DefaultDialect, "has_terminate"),
    (default.DefaultDialect, "is_async"),
    (default.DefaultDialect, "execution_ctx_cls"),
])
def test_the_internals_the_dialect_overrides_still_exist(owner, name):
    present = hasattr(owner, name) or name in getattr(owner, "__annotations__", {})
    assert present, broken(f"{owner.__name__}.{name} is gone")


def test_await_only_still_exists():
    assert callable(getattr(sqlalchemy.util, "await_only", None)), broken(
        "sqlalchemy.util.await_only is gone (renamed await_ in 2.1, deprecated in 2.2)")


def test_a_file_database_is_pooled_and_an_in_memory_one_shared(tmp_path: Path):
    on_disk = make_url(f"sqlite+dockyard:///{tmp_path}/a.db")
    in_memory = make_url("sqlite+dockyard://")
    assert DockyardSQLiteDialect._is_url_file_db(on_disk), broken("_is_url_file_db changed")
    assert not DockyardSQLiteDialect._is_url_file_db(in_memory), broken("_is_url_file_db changed")
    assert DockyardSQLiteDialect.get_pool_class(on_disk) is pool.AsyncAdaptedQueuePool
    args, options = DockyardSQLiteDialect().create_connect_args(on_disk)
    assert isinstance(args, list | tuple), broken("create_connect_args no longer returns args")
    assert options.get("check_same_thread") is False, broken("create_connect_args changed")


async def test_statements_run_through_our_context_and_cursor(tmp_path: Path):
    """AsyncConnection.execute requires the driver to await (our pre_exec does); the rows
    are fetched when the statement runs, so a result outlives its transaction."""
    engine = create_async_engine(f"sqlite+dockyard:///{tmp_path}/b.db")
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text("SELECT 1 UNION ALL SELECT 2"))
            context = result.context
        assert engine.dialect.is_async, broken("the dialect is not taken as async")
        assert engine.dialect.has_terminate, broken("has_terminate is not honoured")
        assert isinstance(engine.pool, pool.AsyncAdaptedQueuePool), broken("pool class")
    except Exception as exc:  # any failure here gets the message below
        pytest.fail(broken(f"a statement through the dialect failed: {exc!r}"))
    finally:
        await engine.dispose()
    assert isinstance(context, sqlite_dialect._ExecutionContext), broken(
        "execution_ctx_cls is not used")
    assert isinstance(context.cursor, sqlite_dialect._Cursor), broken(
        "create_default_cursor is no longer asked for the cursor")
    assert result.all() == [(1,), (2,)], broken("a result read after its transaction is empty")
