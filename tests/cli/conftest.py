"""CLI tests run the real `dockyard` commands against real processes.

`live` is a control plane of the test's own. `user` is an owner of a workspace of its own on
a control plane its module shares (`plane`): the CLI works in that workspace only, so tests
of one module stay independent of each other and of their order, and the module pays for
one `dockyard up` / `dockyard down` (about 10 s) instead of one per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.cli.account import login_with_password
from dockyard.cli.client import ApiClient
from dockyard.core.bootstrap import create_owner
from dockyard.core.platform import Platform
from tests.conftest import make_settings
from tests.live import ADMIN_PASSWORD, Live, bring_up, live, start, stop

__all__ = ["live"]
_accounts = itertools.count(1)


@dataclass(kw_only=True)
class User(Live):
    """The CLI logged in (an API token, as `dockyard login` keeps) as the owner of a
    workspace no other test uses."""

    email: str
    password: str
    workspace: str
    workspace_id: str


@pytest.fixture(scope="module")
def plane_settings() -> dict[str, str]:
    """Settings (DOCKYARD_*) of the module's control plane beyond tests/live.py's."""
    return {}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, plane_settings: dict[str, str]
          ) -> Iterator[Live]:
    """One control plane started with `dockyard up` for the whole module, always stopped."""
    base = tmp_path_factory.mktemp("plane")
    env, url = start(base)
    env.update(plane_settings)
    try:
        yield Live(url, env, base, bring_up(env))
    finally:
        stop(env)


@pytest.fixture
async def user(plane: Live, tmp_path: Path) -> User:
    number = next(_accounts)
    email, workspace = f"user{number}@example.com", f"space-{number}"
    await _new_owner(plane.data_dir, email, workspace)
    config_home = tmp_path / "config"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(config_home))
        config = login_with_password(plane.url, email, ADMIN_PASSWORD)
    me = ApiClient.from_config(config).get("/auth/me")
    env = {**plane.env, "XDG_CONFIG_HOME": str(config_home)}
    return User(plane.url, env, tmp_path, plane.up_output, email=email,
                password=ADMIN_PASSWORD, workspace=workspace, workspace_id=me["workspace_id"])


async def _new_owner(data_dir: Path, email: str, workspace: str) -> None:
    platform = Platform.open(make_settings(data_dir, None))
    try:
        await create_owner(platform, email, ADMIN_PASSWORD, workspace)
    finally:
        await platform.close()
