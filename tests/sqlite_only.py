"""For modules whose behaviour does not depend on the database kind: they run on SQLite only,
with `from tests.sqlite_only import database_url  # noqa: F401`. What the database does (the
stores' queries, locking, isolation) is tested on SQLite and PostgreSQL in other modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fresh_database


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
                 ) -> str | None:
    """A fresh, migrated SQLite database."""
    return fresh_database(request, tmp_path, sqlite_template)
