"""The browser of the dashboard's tests: Debian's Chromium driven by Playwright (never a
downloaded browser), one per test module; a fresh context per test. `accessible(page)` checks
the page as it is now against axe-core's WCAG 2.x A and AA rules. A plugin of the root
conftest, so every module can ask for `page`.

Per module, not per session: while Playwright's sync API lives it leaves its event loop marked
as running in the main thread, and the async tests of later modules could not run theirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from dockyard.api.dashboard import BUILD_DIR

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parents[1] / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
DASHBOARD = Path(os.environ.get("DOCKYARD_DASHBOARD_DIR", BUILD_DIR))
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    for needed, how in ((CHROMIUM, "apt-get install chromium"),
                        (DASHBOARD / "index.html", "scripts/test builds it (build_dashboard)"),
                        (AXE, "cd dashboard && npm ci")):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: {how}")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
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


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
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
