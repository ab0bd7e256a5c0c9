"""Browser tests: the built dashboard in Debian's Chromium (driven by Playwright, never a
downloaded browser) against a real control plane started with `dockyard up`.

`plane` is one control plane per module; `owner` is a new owner of a workspace of its own
on it, so tests stay independent of each other and of their order. Every page a test visits
can be checked with `accessible(page)`: axe-core's WCAG 2.x A and AA rules, no violation."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from dockyard.api.dashboard import BUILD_DIR
from dockyard.core.bootstrap import create_owner
from dockyard.core.platform import Platform
from tests.conftest import make_settings
from tests.live import ADMIN_PASSWORD, Live, bring_up, start, stop

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parents[2] / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
_accounts = itertools.count(1)


@dataclass(frozen=True)
class Owner:
    url: str
    email: str
    password: str
    workspace: str


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    for needed, how in ((CHROMIUM, "apt-get install chromium"),
                        (BUILD_DIR / "index.html", "scripts/test builds it (build_dashboard)"),
                        (AXE, "cd dashboard && npm ci")):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: {how}")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: axe-core is injected inline; the page itself still runs under its CSP
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


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
    page.goto(owner.url + "/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill(owner.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Projects").wait_for()


def accessible(page: Page) -> None:
    """Fail with each rule axe-core finds broken on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                          WCAG_TAGS)
    problems = [f"{v['id']} ({v['impact']}): {v['help']} at "
                f"{[n['target'] for n in v['nodes']][:3]}" for v in found["violations"]]
    assert not problems, f"accessibility violations on {page.url}:\n" + "\n".join(problems)


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A picture of the page, kept in DOCKYARD_SCREENSHOTS when set (the README's come from
    there), else in the test's temporary directory."""
    folder = Path(os.environ.get("DOCKYARD_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
