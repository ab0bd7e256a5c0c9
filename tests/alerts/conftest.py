"""The alert tests' settings: at most two repeats, so the bound is reached quickly."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.kernel.security import ensure_key_file
from dockyard.kernel.settings import Settings
from tests.conftest import make_settings

MAX_REPEATS = 2


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    result = make_settings(tmp_path, database_url, alert_max_repeats=MAX_REPEATS)
    ensure_key_file(result.key_file)
    return result
