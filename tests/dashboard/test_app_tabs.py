"""The service page's Variables, Processes, Logs and Metrics tabs on a control plane without
servers: variables added, changed and removed several at once (secrets never shown), a bad
name's message next to its row, a viewer's read-only view, the empty states of processes, logs
(also live) and metrics, live logs (each line once; scrolling paused while the reader scrolled
up), axe-core's WCAG A/AA rules and a 375 px wide screen. What needs
servers (save and deploy, scale, restart, real logs and metrics) is in
tests/e2e/test_dashboard_app_e2e.py."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.core.platform import Platform
from dockyard.models.base import utcnow
from dockyard.models.tables import LogLine, Project, Service
from tests import browser as browsing
from tests.browser import accessible, screenshot
from tests.conftest import make_settings
from tests.dashboard.conftest import Owner, sign_in
from tests.live import Live

ENV = "/projects/app/services/web/env"


def api(url: str, email: str, password: str) -> httpx.Client:
    http = httpx.Client(base_url=url + "/api/v1", timeout=30)
    login = http.post("/auth/token", data={"username": email, "password": password})
    http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return http


def service(owner: Owner) -> httpx.Client:
    """Project app with service web (made through the API); the owner's client."""
    http = api(owner.url, owner.email, owner.password)
    for path, name in (("/projects", "app"), ("/projects/app/services", "web")):
        assert http.post(path, json={"name": name}).status_code in (201, 409)
    return http


def tab(page: Page, owner: Owner, name: str) -> None:
    page.goto(f"{owner.url}/#/projects/app/services/web/{name}")


def values(http: httpx.Client) -> dict[str, str]:
    return {v["key"]: v["value"] for v in http.get(ENV).json()}


def fill_new(page: Page, number: int, key: str, value: str, secret: bool = False) -> None:
    page.get_by_label(f"New variable {number} name", exact=True).fill(key)
    page.get_by_label(f"New variable {number} value", exact=True).fill(value)
    if secret:
        page.get_by_role("checkbox", name=f"Secret (New variable {number})").check()


def test_variables_added_changed_and_removed_several_at_once(
        page: Page, owner: Owner, tmp_path: Path) -> None:
    http = service(owner)
    sign_in(page, owner)
    tab(page, owner, "variables")
    fill_new(page, 1, "GREETING", "hello")
    page.get_by_role("button", name="Add variable").click()
    fill_new(page, 2, "API_URL", "http://one.example")
    page.get_by_role("button", name="Add variable").click()
    fill_new(page, 3, "TOKEN", "s3cret-value", secret=True)
    accessible(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    assert values(http) == {"API_URL": "http://one.example", "GREETING": "hello",
                            "TOKEN": "********"}
    page.reload()
    expect(page.get_by_label("GREETING value", exact=True)).to_have_value("hello")
    expect(page.get_by_label("API_URL value", exact=True)).to_have_value("http://one.example")
    expect(page.get_by_label("TOKEN value", exact=True)).to_have_value("")
    expect(page.get_by_label("TOKEN value", exact=True)).to_have_attribute(
        "placeholder", "secret: unchanged")
    assert "s3cret-value" not in page.content()
    screenshot(page, "variables-edit", tmp_path)

    page.get_by_label("GREETING value", exact=True).fill("hi")
    page.get_by_label("API_URL value", exact=True).fill("http://two.example")
    page.get_by_role("button", name="Remove TOKEN").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_label("GREETING value", exact=True)).to_have_value("hi")
    expect(page.get_by_label("TOKEN value", exact=True)).to_have_count(0)
    assert values(http) == {"API_URL": "http://two.example", "GREETING": "hi"}
    accessible(page)


def test_a_bad_name_is_refused_next_to_its_row(page: Page, owner: Owner) -> None:
    http = service(owner)
    http.patch(ENV, json={"set": [{"key": "GREETING", "value": "hello"}]}).raise_for_status()
    sign_in(page, owner)
    tab(page, owner, "variables")
    page.get_by_role("button", name="Add variable").click()
    fill_new(page, 1, "bad-name", "x")
    page.get_by_label("GREETING value", exact=True).fill("changed")
    page.get_by_role("button", name="Save", exact=True).click()
    bad = page.get_by_role("listitem").filter(has=page.get_by_label("New variable 1 name"))
    expect(bad.get_by_role("alert")).to_contain_text("use uppercase letters")
    expect(page.get_by_label("New variable 1 name")).to_have_attribute("aria-invalid", "true")
    good = page.get_by_role("listitem").filter(has=page.get_by_label("GREETING value"))
    expect(good.get_by_role("alert")).to_have_count(0)  # empty: not shown
    assert values(http) == {"GREETING": "hello"}  # one PATCH: nothing of it was saved
    accessible(page)


def test_a_refusal_naming_a_variable_is_shown_next_to_its_row(page: Page, owner: Owner) -> None:
    """Not a validation error with a place (a 400 whose message names the key): a value of
    20,000 characters is 40,000 bytes in UTF-8, over the 32 KiB the API takes."""
    http = service(owner)
    http.patch(ENV, json={"set": [{"key": "GREETING", "value": "hello"},
                                  {"key": "OTHER", "value": "x"}]}).raise_for_status()
    sign_in(page, owner)
    tab(page, owner, "variables")
    page.get_by_label("GREETING value", exact=True).fill("é" * 20_000)
    page.get_by_role("button", name="Save", exact=True).click()
    row = page.get_by_role("listitem").filter(has=page.get_by_label("GREETING value"))
    expect(row.get_by_role("alert")).to_contain_text("the value of GREETING is larger than")
    other = page.get_by_role("listitem").filter(has=page.get_by_label("OTHER value"))
    expect(other.get_by_role("alert")).to_have_count(0)
    assert values(http)["GREETING"] == "hello"


def test_save_and_deploy_without_a_live_release_saves_and_says_why_it_did_not_deploy(
        page: Page, owner: Owner) -> None:
    http = service(owner)
    sign_in(page, owner)
    tab(page, owner, "variables")
    fill_new(page, 1, "GREETING", "hello")
    page.get_by_role("button", name="Save and deploy").click()
    note = page.locator("#env-form-error")
    expect(note).to_contain_text("Saved, but the deploy was refused: ")
    expect(page.get_by_role("button", name="Save and deploy")).to_have_attribute(
        "aria-describedby", "env-form-error")
    assert values(http) == {"GREETING": "hello"}
    accessible(page)


def test_a_viewer_reads_variables_and_sees_no_controls(page: Page, owner: Owner) -> None:
    http = service(owner)
    http.patch(ENV, json={"set": [{"key": "GREETING", "value": "hello"},
                                  {"key": "TOKEN", "value": "s3cret-value", "secret": True}]}
               ).raise_for_status()
    workspace = http.get("/auth/me").json()["workspace_id"]
    email = f"viewer-of-{owner.workspace}@example.com"
    invited = http.post(f"/workspaces/{workspace}/invitations",
                        json={"email": email, "role": "viewer"})
    assert invited.status_code == 201, invited.text
    accepted = httpx.post(owner.url + "/api/v1/invitations/accept", timeout=30, json={
        "token": invited.json()["token"], "password": owner.password})
    assert accepted.status_code == 200, accepted.text
    browsing.sign_in(page, owner.url, email, owner.password)
    tab(page, owner, "variables")
    table = page.get_by_role("table", name="The service's variables")
    expect(table.get_by_role("row", name="GREETING")).to_contain_text("hello")
    expect(table.get_by_role("row", name="TOKEN")).to_contain_text("secret, hidden")
    assert "s3cret-value" not in page.content()
    expect(page.get_by_role("textbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Add variable")).to_have_count(0)
    accessible(page)


def test_empty_processes_logs_and_metrics(page: Page, owner: Owner, tmp_path: Path) -> None:
    service(owner)
    sign_in(page, owner)
    tab(page, owner, "processes")
    expect(page.get_by_text("No processes run yet")).to_be_visible()
    accessible(page)
    tab(page, owner, "logs")
    expect(page.get_by_text("No log lines yet.")).to_be_visible()
    page.get_by_label("Search the logs").fill("error")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text('No line contains "error".')).to_be_visible()
    page.get_by_label("Process type").fill("Web;rm")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#logs-error")).to_contain_text("use a process type like 'web'")
    page.get_by_label("Process type").fill("worker")
    page.get_by_label("Since").select_option("1h")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#logs-error")).to_be_empty()
    page.get_by_label("Live").check()
    expect(page.get_by_role("status")).to_have_text("following new lines")
    expect(page.get_by_role("region", name="Log lines")).to_be_visible()
    accessible(page)
    tab(page, owner, "metrics")
    expect(page.get_by_text("No requests yet")).to_be_visible()
    chart = page.get_by_role("img", name="Request rate")
    expect(chart).to_have_attribute("aria-label", "Request rate: latest 0.00 req/s, highest "
                                                  "0.00 req/s, 0 deploys marked")
    expect(page.get_by_role("img", name="p95 latency")).to_have_attribute(
        "aria-label", "p95 latency: no data in this range, 0 deploys marked")
    page.get_by_role("combobox", name="Range").select_option("6h")
    expect(page.get_by_text("per 5 minute step")).to_be_visible()
    accessible(page)
    screenshot(page, "metrics-empty", tmp_path)


def test_app_tabs_fit_a_narrow_screen(page: Page, owner: Owner) -> None:
    http = service(owner)
    http.patch(ENV, json={"set": [{"key": "A_RATHER_LONG_VARIABLE_NAME_FOR_A_PHONE",
                                   "value": "x" * 120}]}).raise_for_status()
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, owner)
    for name, ready in (("variables", "Add variable"), ("processes", None),
                        ("logs", "Search"), ("metrics", None)):
        tab(page, owner, name)
        if ready:
            expect(page.get_by_role("button", name=ready, exact=True)).to_be_visible()
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{name} is {width} px wide at a 375 px viewport"


def store_line(plane: Live, workspace_id: str, line: str, age_minutes: float,
               copies: int = 1) -> None:
    """A log line of app/web (or `copies` of it, numbered) stored as the log collector
    stores them."""
    async def add() -> None:
        platform = Platform.open(make_settings(plane.data_dir, None))

        async def tx(s: AsyncSession) -> None:
            query = select(Service.id).join(Project).where(Project.workspace_id == workspace_id)
            service_id = await s.scalar(query)
            for n in range(copies):
                text = f"{line} {n + 1}" if copies > 1 else line
                s.add(LogLine(workspace_id=workspace_id, service_id=service_id,
                              server_name="node-1", process_type="web", replica=1,
                              release="a" * 32, stream="stdout", line=text, size=len(text),
                              time=utcnow() - timedelta(minutes=age_minutes, seconds=-n)))
        try:
            await platform.db.write(tx)
        finally:
            await platform.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        thread.submit(asyncio.run, add()).result()


def test_live_logs_go_on_after_the_newest_stored_line_once(
        page: Page, owner: Owner, plane: Live) -> None:
    """The tail is in time order, the stream in the order lines were stored: a line stored
    last but written earlier is not shown twice when Live starts."""
    workspace = service(owner).get("/auth/me").json()["workspace_id"]
    store_line(plane, workspace, "written last", age_minutes=1)
    store_line(plane, workspace, "stored last", age_minutes=5)
    sign_in(page, owner)
    tab(page, owner, "logs")
    lines = page.get_by_role("region", name="Log lines").locator(".line")
    expect(lines).to_have_count(2)
    expect(lines.last).to_contain_text("written last")
    page.get_by_label("Live").check()
    expect(page.get_by_role("status")).to_have_text("following new lines")
    store_line(plane, workspace, "new while live", age_minutes=0)
    expect(lines.last).to_contain_text("new while live")
    expect(lines).to_have_count(3)
    expect(page.get_by_text("stored last")).to_have_count(1)


AT_BOTTOM = "box => box.scrollTop + box.clientHeight >= box.scrollHeight - 24"


def at_bottom(page: Page) -> bool:
    return bool(page.get_by_role("region", name="Log lines").evaluate(AT_BOTTOM))


def test_live_logs_stop_scrolling_while_the_reader_scrolled_up(
        page: Page, owner: Owner, plane: Live) -> None:
    workspace = service(owner).get("/auth/me").json()["workspace_id"]
    store_line(plane, workspace, "earlier line", age_minutes=5, copies=80)
    sign_in(page, owner)
    tab(page, owner, "logs")
    box = page.get_by_role("region", name="Log lines")
    expect(box.locator(".line")).to_have_count(80)
    assert at_bottom(page)
    page.get_by_label("Live").check()
    expect(page.get_by_role("status")).to_have_text("following new lines")
    box.evaluate("box => box.scrollTo(0, 0)")
    expect(page.get_by_text("Scrolling paused while you read.")).to_be_visible()
    store_line(plane, workspace, "arrived while reading", age_minutes=0)
    expect(box.locator(".line").last).to_contain_text("arrived while reading")
    assert box.evaluate("box => box.scrollTop") == 0
    accessible(page)
    page.get_by_role("button", name="Jump to newest").click()
    expect(page.get_by_text("Scrolling paused while you read.")).to_have_count(0)
    assert at_bottom(page)
    store_line(plane, workspace, "followed at the bottom", age_minutes=0)
    expect(box.locator(".line").last).to_contain_text("followed at the bottom")
    page.wait_for_function(f"({AT_BOTTOM})(document.querySelector('[aria-label=\"Log lines\"]'))")
