"""The start-up check of the schema, read without alembic, agrees with alembic's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.kernel import migrate, schema_version
from dockyard.kernel.security import ensure_key_file
from tests.conftest import make_settings


def test_the_head_is_alembics_head() -> None:
    assert schema_version.head_revision() == migrate.head_revision()


def test_a_second_head_is_refused(tmp_path: Path) -> None:
    for name, revision, down in (("a", "1", None), ("b", "2", "1"), ("c", "3", "1")):
        (tmp_path / f"{name}.py").write_text(
            f'revision: str = "{revision}"\ndown_revision: str | None = '
            f'{f"{down!r}" if down else None}\n')
    with pytest.raises(RuntimeError, match=r"heads \['2', '3'\]"):
        schema_version.head_revision(tmp_path)


async def test_a_migrated_database_is_at_the_head(platform: Platform) -> None:
    assert await schema_version.current_revision(platform.db) == migrate.head_revision()
    assert await schema_version.is_migrated(platform.db)


async def test_a_database_one_revision_behind_is_not_migrated(platform: Platform) -> None:
    async def step_back(s: AsyncSession) -> None:
        await s.execute(text("UPDATE alembic_version SET version_num = '0016'"))

    await platform.db.write(step_back)
    assert await schema_version.current_revision(platform.db) == "0016"
    assert not await schema_version.is_migrated(platform.db)


async def test_an_empty_database_has_no_revision(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None)
    ensure_key_file(settings.key_file)
    empty = Platform.open(settings)
    try:
        assert await schema_version.current_revision(empty.db) is None
        assert not await schema_version.is_migrated(empty.db)
    finally:
        await empty.close()


def test_the_api_imports_no_alembic() -> None:
    code = "import sys, dockyard.api.app; print('alembic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
