"""The dashboard's Variables, Processes, Logs and Metrics tabs end to end on the shared stage,
with the example app on the first server: in the browser a variable is changed and "Save and
deploy" rolls it out (the deployment page shows it succeed, the app answers with the new
value); web is scaled to 2 and restarted; the app's access lines arrive live and are searched;
the request rate is charted with the deploys marked. axe-core checks each tab, and each fits a
375 px wide screen with its data."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser import accessible, screenshot, sign_in
from tests.e2e.stage import EXAMPLE, Stage
from tests.live import ADMIN_EMAIL, ADMIN_PASSWORD, wait_until

pytestmark = pytest.mark.slow
PROJECT, SERVICE = "dashapp", "hello"
HOST = f"{SERVICE}.{PROJECT}.localhost"
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
SLOW = 300_000  # ms: a rollout under the machine's load
SERVICE_API = f"/projects/{PROJECT}/services/{SERVICE}"


@pytest.fixture(scope="module")
def web(stage: Stage) -> dict[str, Any]:
    """The example app on the first server."""
    stage.ensure_service(PROJECT, SERVICE)
    node = stage.nodes[0]
    events = stage.deploy_archive(EXAMPLE, project=PROJECT, service=SERVICE,
                                  server=[node["name"]], **FAST)
    assert events[-1]["status"] == "succeeded", events[-8:]
    return node


def open_tab(page: Page, stage: Stage, tab: str) -> None:
    sign_in(page, stage.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{stage.url}/#/projects/{PROJECT}/services/{SERVICE}/{tab}")


def test_a_variable_is_saved_and_deployed(page: Page, stage: Stage, web: dict[str, Any],
                                          tmp_path: Path) -> None:
    stage.http.patch(f"{SERVICE_API}/env", json={"set": [
        {"key": "GREETING", "value": "Hello"},
        {"key": "API_KEY", "value": "not-for-eyes", "secret": True}]}).raise_for_status()
    open_tab(page, stage, "variables")
    page.get_by_label("GREETING value", exact=True).fill("Hello from the dashboard")
    expect(page.get_by_label("API_KEY value", exact=True)).to_have_value("")
    accessible(page)
    screenshot(page, "variables", tmp_path)
    page.get_by_role("button", name="Save and deploy").click()
    expect(page).to_have_url(re.compile(r"#/deployments/[0-9a-f]{32}$"))
    expect(page.get_by_role("heading", name="Succeeded")).to_be_visible(timeout=SLOW)
    assert stage.app(web, HOST).json()["greeting"] == "Hello from the dashboard"
    assert "not-for-eyes" not in page.content()
    accessible(page)


def running_web(stage: Stage) -> int:
    listing = stage.http.get(f"{SERVICE_API}/processes").json()
    return sum(p["type"] == "web" and p["state"] == "running" for p in listing["processes"])


def test_web_is_scaled_to_two_and_restarted(page: Page, stage: Stage, web: dict[str, Any],
                                           tmp_path: Path) -> None:
    open_tab(page, stage, "processes")
    expect(page.get_by_role("heading", name="web (1 running)")).to_be_visible()
    accessible(page)
    page.get_by_label("Replicas of web per server").fill("2")
    page.get_by_role("button", name="Scale web").click()
    result = page.locator("#result-web")
    expect(result).to_contain_text("Done", timeout=SLOW)
    wait_until(lambda: running_web(stage) == 2, "2 web processes run", timeout=60)
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("heading", name="web (2 running)")).to_be_visible()
    table = page.get_by_role("table", name="Containers of web")
    expect(table.get_by_role("row")).to_have_count(3)  # the header and two processes
    page.get_by_role("button", name="Restart web").click()
    expect(result).to_contain_text("Restarting web")
    expect(result).to_contain_text("Done", timeout=SLOW)
    expect(result.get_by_role("link", name=re.compile("deployment"))).to_be_visible()
    assert stage.app(web, HOST).status_code == 200
    accessible(page)
    screenshot(page, "processes", tmp_path)


def test_logs_arrive_live_and_are_searched(page: Page, stage: Stage, web: dict[str, Any],
                                           tmp_path: Path) -> None:
    marker = f"dash-{uuid.uuid4().hex[:8]}"
    open_tab(page, stage, "logs")
    expect(page.get_by_role("region", name="Log lines")).to_be_visible()
    page.get_by_label("Live").check()
    expect(page.get_by_role("status")).to_have_text("following new lines")
    for n in range(3):
        assert stage.app(web, HOST, f"/{marker}-{n}").status_code == 404
    logs = page.get_by_role("region", name="Log lines")
    expect(logs).to_contain_text(f"/{marker}-2", timeout=90_000)
    accessible(page)
    screenshot(page, "logs", tmp_path)
    page.get_by_label("Search the logs").fill(f"{marker}-1")
    page.get_by_role("button", name="Search").click()
    expect(logs.locator(".line")).to_have_count(1)
    expect(logs).to_contain_text(f"/{marker}-1")
    page.get_by_label("Search the logs").fill(f"{marker}-nothing")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text(f'No line contains "{marker}-nothing".')).to_be_visible()
    accessible(page)


def requests_in_the_last_hour(stage: Stage) -> int:
    series = stage.http.get(f"{SERVICE_API}/metrics", params={"since": "1h"}).json()
    return sum(point["requests"] for point in series["points"])


def test_the_request_rate_is_charted_with_the_deploys_marked(
        page: Page, stage: Stage, web: dict[str, Any], tmp_path: Path) -> None:
    for _ in range(40):
        assert stage.app(web, HOST).status_code == 200
    wait_until(lambda: requests_in_the_last_hour(stage) >= 40,
               "the requests are in the service's metrics", timeout=90)
    open_tab(page, stage, "metrics")
    rate = page.get_by_role("img", name="Request rate")
    expect(rate).to_have_attribute(
        "aria-label", re.compile(r"highest (0\.0[1-9]|0\.[1-9]\d|[1-9][\d.]*) req/s, "
                                 r"[1-9]\d* deploys? marked"))
    latency = page.get_by_role("img", name="p95 latency")
    expect(latency).to_have_attribute("aria-label", re.compile(r"latest [\d.]+ ms"))
    line = latency.locator("path.series").get_attribute("d") or ""
    dots = latency.locator("circle.dot").count()  # a step with no neighbour is a dot
    assert "L" in line or dots, f"the p95 figures are summarised but not drawn: {line!r}"
    assert rate.locator("line.mark").count() >= 2  # the first deploy and the env change's
    expect(rate.locator("text.mark-label").first).to_have_text(re.compile(r"deploy [0-9a-f]{8}"))
    accessible(page)
    screenshot(page, "metrics", tmp_path)


def test_the_tabs_with_data_fit_a_narrow_screen(page: Page, stage: Stage,
                                               web: dict[str, Any]) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    open_tab(page, stage, "variables")
    for tab, ready in (("variables", "GREETING value"), ("processes", "Replicas of web per server"),
                       ("logs", "Search the logs"), ("metrics", "Range")):
        page.goto(f"{stage.url}/#/projects/{PROJECT}/services/{SERVICE}/{tab}")
        expect(page.get_by_label(ready).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => "
                             "e.getBoundingClientRect().right > 376).map(e => e.tagName + "
                             "'.' + e.className).slice(0, 5)")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{tab} is {width} px wide at a 375 px viewport: {wide}"
