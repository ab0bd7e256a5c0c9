"""What the database retention job costs: `--rows` audit rows (each the size of a deploy
engine's old full-row update, ~2.5 KB) pruned down to half by the audit bound, in batches of
`--batch`. Prints the rows and batches, the whole run, and the longest and typical write
transaction (the time SQLite's write lock is held at once); the database file before and
after. Asserts nothing.

    .venv/bin/python bench/retention_bench.py [--rows 200000] [--batch 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core import retention
from dockyard.kernel.db import Database, Work
from dockyard.kernel.migrate import upgrade
from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from dockyard.models.enums import AuditAction
from dockyard.models.tables import AuditEvent

T = TypeVar("T")
ROW = {f"column_{i}": "x" * 100 for i in range(12)}
SEED_BATCH = 5_000


class TimedDatabase(Database):
    """Records how long each write transaction took."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.writes: list[float] = []

    async def write(self, work: Work[T], *, info: dict[str, Any] | None = None) -> T:
        started = time.perf_counter()
        try:
            return await super().write(work, info=info)
        finally:
            self.writes.append(time.perf_counter() - started)


async def seed(db: Database, rows: int) -> None:
    for start in range(0, rows, SEED_BATCH):
        batch = [{"action": AuditAction.UPDATE, "entity_type": "deployments",
                  "entity_id": f"d{i}", "before": ROW, "after": ROW}
                 for i in range(start, min(rows, start + SEED_BATCH))]

        async def tx(s: AsyncSession, batch: list[dict[str, Any]] = batch) -> None:
            await s.execute(insert(AuditEvent), batch)

        await db.write(tx)


def size(settings: Settings) -> str:
    """The SQLite files' size ('' on PostgreSQL)."""
    if settings.database_url:
        return ""
    files = [settings.data_dir / f"dockyard.db{x}" for x in ("", "-wal")]
    return f"; SQLite files {sum(f.stat().st_size for f in files if f.exists()) / 1024**2:,.0f} MB"


async def main(rows: int, batch: int, database_url: str | None) -> None:
    home = Path(tempfile.mkdtemp(prefix="dy-retention-bench-"))
    settings = Settings(data_dir=home, database_url=database_url, redis_url=None,
                        audit_max_rows=rows // 2, retention_batch=batch)
    ensure_key_file(settings.key_file)
    upgrade(settings)
    db = TimedDatabase(settings)
    await seed(db, rows)
    print(f"{rows:,} audit rows seeded{size(settings)}")
    db.writes.clear()
    bound = next(b for b in retention.bounds(settings, set()) if b.name == "audit")
    started = time.perf_counter()
    pruned = await retention.prune_bound(db, bound, batch)
    spent = time.perf_counter() - started
    print(f"pruned {pruned.rows:,} rows in {pruned.batches:,} batches of {batch}: {spent:.1f} s "
          f"({pruned.rows / spent:,.0f} rows/s)")
    writes = sorted(db.writes)
    print(f"write transactions: median {writes[len(writes) // 2] * 1000:.1f} ms, "
          f"p99 {writes[len(writes) * 99 // 100] * 1000:.1f} ms, "
          f"longest {writes[-1] * 1000:.1f} ms")
    print(f"after pruning{size(settings) or ': -'} (freed pages are reused, not returned)")
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch, args.database_url))
