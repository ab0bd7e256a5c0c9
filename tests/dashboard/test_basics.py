"""Sign-in, projects and services in the browser; the pages pass axe-core's WCAG A/AA rules
and fit a 375 px wide screen."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser import accessible, screenshot
from tests.dashboard.conftest import Owner, sign_in


def test_the_api_serves_the_dashboard_with_immutable_gzipped_assets(owner: Owner) -> None:
    page = httpx.get(owner.url + "/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    asset = page.text.split('src="')[1].split('"')[0]
    answer = httpx.get(owner.url + asset, headers={"Accept-Encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert "immutable" in answer.headers["cache-control"]
    assert httpx.get(owner.url + "/assets/..%2Findex.html").status_code == 404


def test_a_wrong_password_is_shown_and_a_right_one_signs_in(page: Page, owner: Owner) -> None:
    page.goto(owner.url + "/")
    accessible(page)
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("incorrect")
    page.get_by_label("Password").fill(owner.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    expect(page.get_by_text(f"{owner.email} · owner")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()


def test_a_project_and_a_service_are_created_and_errors_shown(
        page: Page, owner: Owner, tmp_path: Path) -> None:
    sign_in(page, owner)
    page.get_by_label("New project").fill("Not A Name!")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#project-error")).to_contain_text("name")
    page.get_by_label("New project").fill("shop")
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("link", name="shop").click()
    page.get_by_label("New service").fill("web")
    page.get_by_role("button", name="Create service").click()
    page.get_by_role("link", name="web").click()
    expect(page.get_by_role("heading", name="web")).to_be_visible()
    accessible(page)
    screenshot(page, "service", tmp_path)


def test_pages_fit_a_narrow_screen(page: Page, owner: Owner) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, owner)
    for route in ("#/", "#/servers", "#/settings", "#/account"):
        page.goto(owner.url + "/" + route)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{route} is {width} px wide at a 375 px viewport"
        accessible(page)


def test_sign_in_and_moving_around_work_from_the_keyboard(page: Page, owner: Owner) -> None:
    page.goto(owner.url + "/")
    page.keyboard.press("Tab")
    page.keyboard.type(owner.email)
    page.keyboard.press("Tab")
    page.keyboard.type(owner.password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.get_by_role("link", name="Servers", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    expect(page.locator("main")).to_be_focused()


def _token(owner: Owner) -> dict[str, str]:
    answer = httpx.post(owner.url + "/api/v1/auth/token",
                        data={"username": owner.email, "password": owner.password})
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_switching_workspaces_shows_the_other_workspaces_projects(
        page: Page, owner: Owner) -> None:
    auth = _token(owner)
    other = httpx.post(owner.url + "/api/v1/workspaces", headers=auth,
                       json={"name": "second", "display_name": "Second space"}).json()
    httpx.post(owner.url + "/api/v1/projects", json={"name": "only-in-second"},
               headers={**auth, "X-Dockyard-Workspace": other["id"]}).raise_for_status()
    sign_in(page, owner)
    expect(page.get_by_role("link", name="only-in-second")).to_have_count(0)
    page.get_by_label("Workspace").select_option(label="Second space")
    expect(page.get_by_role("link", name="only-in-second")).to_be_visible()
    page.reload()
    expect(page.get_by_role("link", name="only-in-second")).to_be_visible()
    expect(page.get_by_label("Workspace")).to_have_value(other["id"])
