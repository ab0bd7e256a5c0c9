"""Alembic environment: runs migrations on the async engine of the configured URL."""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeDecorator

import dockyard.models.alert_tables  # (registers the alerts and notification tables)
import dockyard.models.app_metric_tables  # (registers the app metrics and host tables)
import dockyard.models.autoscale_tables  # (registers the autoscaling tables)
import dockyard.models.domains  # (registers the ACME accounts table)
import dockyard.models.queue  # (registers the outbox and request metrics tables)
import dockyard.models.stateful  # (registers the stateful instances and backups tables)
import dockyard.models.tables  # noqa: F401  (registers every table)
from dockyard.models.base import Base

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, obj: object, _context: object) -> str | bool:
    """Render our TypeDecorators as their plain SQL type, so migrations import nothing of ours."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.attributes["url"], poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async())
