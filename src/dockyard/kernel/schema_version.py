"""Whether the database is at the newest schema, read without alembic: a serving process
would otherwise hold alembic (about 7 MB) for good, for one check at start-up. Migrating
stays with alembic (kernel/migrate.py); tests/kernel/test_schema_version.py checks that both
name the same revisions."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.db import Database

VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
VERSION_TABLE = "alembic_version"
_ASSIGNED = r"^{name}\b[^=\n]*=\s*[\"']([^\"']+)[\"']"


def _assigned(name: str, source: str) -> str | None:
    found = re.search(_ASSIGNED.format(name=name), source, re.MULTILINE)
    return found.group(1) if found else None


def head_revision(versions: Path = VERSIONS) -> str:
    """The one revision no other revises (the migrations are a single line)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in versions.glob("*.py"):
        source = path.read_text()
        revisions.add(_assigned("revision", source) or "")
        revised.add(_assigned("down_revision", source) or "")
    heads = revisions - revised - {""}
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {versions} have heads {sorted(heads)}, not one")
    return heads.pop()


async def current_revision(db: Database) -> str | None:
    """The revision the database is at; None before its first migration."""
    async def tx(session: AsyncSession) -> str | None:
        connection = await session.connection()
        if not await connection.run_sync(lambda c: inspect(c).has_table(VERSION_TABLE)):
            return None
        found = await session.scalar(text("SELECT version_num FROM alembic_version"))
        return str(found) if found is not None else None

    return await db.read(tx)


async def is_migrated(db: Database) -> bool:
    return await current_revision(db) == head_revision()
