"""The service page's Domains and Databases tabs on a control plane without servers: empty
states, the API's refusals shown next to what caused them (a bad hostname, a Postgres with
nowhere to run), axe-core's WCAG A/AA rules, and a 375 px wide screen. What needs servers
(certificates, databases, backups) is in tests/e2e/test_dashboard_data_e2e.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from playwright.sync_api import Page, expect

from tests.browser import accessible
from tests.dashboard.conftest import Owner, sign_in


def open_tab(page: Page, owner: Owner, tab: str) -> None:
    """Project shop with app web (made through the API), signed in, on web's `tab`."""
    shop_web(owner)
    sign_in(page, owner)
    page.goto(f"{owner.url}/#/projects/shop/services/web/{tab}")


def shop_web(owner: Owner) -> None:
    with owner_api(owner) as http:
        for path, name in (("/projects", "shop"), ("/projects/shop/services", "web")):
            assert http.post(path, json={"name": name}).status_code in (201, 409)


@contextmanager
def owner_api(owner: Owner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=owner.url + "/api/v1", timeout=30) as http:
        login = http.post("/auth/token", data={"username": owner.email,
                                               "password": owner.password})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield http


def viewer_of(owner: Owner) -> Owner:
    """A new account invited into the owner's workspace as a viewer."""
    viewer = Owner(owner.url, f"viewer-{owner.workspace}@example.com", owner.password,
                   owner.workspace)
    with owner_api(owner) as http:
        workspace = http.get("/auth/me").json()["workspace_id"]
        invited = http.post(f"/workspaces/{workspace}/invitations",
                            json={"email": viewer.email, "role": "viewer"})
        assert invited.status_code == 201, invited.text
    accepted = httpx.post(owner.url + "/api/v1/invitations/accept",
                          json={"token": invited.json()["token"], "password": viewer.password})
    assert accepted.status_code in (200, 201), accepted.text
    return viewer


def test_domains_tab_empty_and_a_bad_hostname_refused_next_to_the_field(
        page: Page, owner: Owner) -> None:
    open_tab(page, owner, "domains")
    expect(page.get_by_text("No domains yet")).to_be_visible()
    accessible(page)
    field = page.get_by_label("Hostname")
    field.fill("Not a Host!")
    page.get_by_role("button", name="Add domain").click()
    note = page.locator("#domain-error")
    expect(note).to_contain_text("use a lowercase domain name")
    expect(field).to_have_attribute("aria-describedby", "domain-error")
    expect(field).to_have_attribute("aria-invalid", "true")
    accessible(page)


def test_databases_tab_empty_and_a_postgres_with_no_server_refused(
        page: Page, owner: Owner) -> None:
    open_tab(page, owner, "databases")
    expect(page.get_by_text("No Postgres or Redis in shop yet.")).to_be_visible()
    expect(page.get_by_text("None: web is given no database URL.")).to_be_visible()
    accessible(page)
    page.get_by_label("Kind").select_option("postgres")
    page.get_by_role("button", name="Create database").click()
    expect(page.locator("#database-error")).to_contain_text("no active server")
    expect(page.get_by_role("button", name="Create database")).to_be_enabled()
    accessible(page)


def test_data_tabs_fit_a_narrow_screen(page: Page, owner: Owner) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    open_tab(page, owner, "domains")
    for tab, ready in (("domains", "Add domain"), ("databases", "Create database")):
        page.goto(f"{owner.url}/#/projects/shop/services/web/{tab}")
        expect(page.get_by_role("button", name=ready)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{tab} is {width} px wide at a 375 px viewport"
        accessible(page)


def test_a_viewer_sees_the_tabs_without_their_buttons(page: Page, owner: Owner) -> None:
    shop_web(owner)
    viewer = viewer_of(owner)
    sign_in(page, viewer)
    page.goto(f"{owner.url}/#/projects/shop/services/web/domains")
    expect(page.get_by_text("No domains yet")).to_be_visible()
    expect(page.get_by_role("button", name="Add domain")).to_have_count(0)
    page.goto(f"{owner.url}/#/projects/shop/services/web/databases")
    expect(page.get_by_text("No Postgres or Redis in shop yet.")).to_be_visible()
    expect(page.get_by_role("button", name="Create database")).to_have_count(0)
    accessible(page)
