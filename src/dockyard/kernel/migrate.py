"""Alembic migrations, run from code: `upgrade` for `dockyard up`, `pending` for startup checks."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.kernel.db import Database
from dockyard.kernel.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(settings: Settings) -> None:
    """Bring the database to the newest revision. Safe to call from inside an event loop."""
    if settings.sqlalchemy_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            command.upgrade(alembic_config(settings.sqlalchemy_url), "head")
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(db: Database) -> str | None:
    async def tx(session: AsyncSession) -> str | None:
        return await (await session.connection()).run_sync(_current)

    return await db.read(tx)


async def is_migrated(db: Database) -> bool:
    return await current_revision(db) == head_revision()
