"""Browser tests of the dashboard against a real control plane started with `dockyard up`
(the browser: tests/browser.py). `plane` is one control plane per module; `owner` is a new
owner of a workspace of its own on it, so tests stay independent of each other and of their
order. The flows that need servers and deploys are in tests/e2e/test_dashboard_e2e.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page

from dockyard.core.bootstrap import create_owner
from dockyard.core.platform import Platform
from tests import browser as browsing
from tests.conftest import make_settings
from tests.live import ADMIN_PASSWORD, Live, bring_up, start, stop

_accounts = itertools.count(1)


@dataclass(frozen=True)
class Owner:
    url: str
    email: str
    password: str
    workspace: str


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("plane")
    env, url = start(base)
    try:
        yield Live(url, env, base, bring_up(env))
    finally:
        stop(env)


@pytest.fixture
def owner(plane: Live) -> Owner:
    number = next(_accounts)
    made = Owner(plane.url, f"owner{number}@example.com", ADMIN_PASSWORD, f"space-{number}")
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        thread.submit(asyncio.run, _create_owner(plane.data_dir, made)).result()
    return made


async def _create_owner(data_dir: Path, owner: Owner) -> None:
    platform = Platform.open(make_settings(data_dir, None))
    try:
        await create_owner(platform, owner.email, owner.password, owner.workspace)
    finally:
        await platform.close()


def sign_in(page: Page, owner: Owner) -> None:
    browsing.sign_in(page, owner.url, owner.email, owner.password)
