"""Migrations match the models, and an un-migrated database is refused with the fix."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dockyard.api.app import open_platform
from dockyard.core.platform import Platform
from dockyard.kernel.errors import NotMigrated
from dockyard.kernel.migrate import current_revision, head_revision
from dockyard.kernel.security import ensure_key_file
from dockyard.models.base import Base
from dockyard.models.stateful import Backup  # noqa: F401  (registers the stateful tables)
from tests.conftest import make_settings


async def test_migrated_schema_matches_the_models(platform: Platform):
    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with platform.db.engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []
    assert await current_revision(platform.db) == head_revision()


async def test_an_unmigrated_database_is_refused_naming_the_command(tmp_path):
    settings = make_settings(tmp_path, None)
    ensure_key_file(settings.key_file)
    with pytest.raises(NotMigrated, match="dockyard migrate"):
        await open_platform(settings)
