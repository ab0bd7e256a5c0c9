"""Deleting many rows without holding SQLite's write lock for long: `batch` rows per
transaction, oldest first, until none is left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from dockyard.kernel.db import Database
from dockyard.models.base import Base


@dataclass(frozen=True)
class Pruned:
    rows: int = 0
    batches: int = 0


async def delete_in_batches(db: Database, table: type[Base], where: ColumnElement[bool],
                            order: InstrumentedAttribute[Any], batch: int) -> Pruned:
    """Delete the rows of `table` that `where` selects, `batch` per transaction, by `order`."""
    pruned = Pruned()
    while True:
        dropped = await db.write(lambda s: _drop_batch(s, table, where, order, batch))
        pruned = Pruned(pruned.rows + dropped, pruned.batches + 1)
        if dropped < batch:
            return pruned


async def _drop_batch(s: AsyncSession, table: type[Base], where: ColumnElement[bool],
                      order: InstrumentedAttribute[Any], batch: int) -> int:
    key = table.__mapper__.primary_key[0]
    ids = list(await s.scalars(select(key).where(where).order_by(order).limit(batch)))
    if ids:
        await s.execute(delete(table).where(key.in_(ids))
                        .execution_options(synchronize_session=False))
    return len(ids)
