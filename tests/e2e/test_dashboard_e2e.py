"""Deploys and rollback in the browser on the shared stage's 3 nodes: the stage's owner signs
in, creates a project and a service, deploys examples/hello from its folder (packed in the
browser) and watches every node's steps live through a dropped event stream, deploys again
from an image and reloads the page mid-stream, then rolls back from the Releases tab after
the dialog shows the image and variables that come back. Each event is shown once; the app
answers on every node with the release the page says; axe-core checks each page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser import accessible, screenshot, sign_in
from tests.dashboard.streams import EVENTS_URL, Blip, event_ids, shown_events
from tests.e2e.stage import EXAMPLE, Stage
from tests.live import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.slow
PROJECT, SERVICE = "dashboard-e2e", "hello"
HOST = f"{SERVICE}.{PROJECT}.localhost"
SLOW = 300_000  # ms: a build and rollout under the machine's load
SERVICE_PAGE = f"#/projects/{PROJECT}/services/{SERVICE}"
DEPLOYMENT_URL = re.compile(r"#/deployments/([0-9a-f]{32})$")


def signed_in(page: Page, stage: Stage, route: str = "") -> None:
    sign_in(page, stage.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    if route:
        page.goto(f"{stage.url}/{route}")


def deployment_id(page: Page) -> str:
    expect(page).to_have_url(DEPLOYMENT_URL)
    found = DEPLOYMENT_URL.search(page.url)
    assert found
    return found.group(1)


def served_everywhere(stage: Stage, release: str) -> dict[str, Any]:
    """What the app answers with on every node, the same release everywhere."""
    answers = [stage.app(node, HOST).json() for node in stage.nodes]
    assert {answer["release"] for answer in answers} == {release[:8]}, answers
    return answers[0]


def succeeded_on_every_node(page: Page, stage: Stage) -> None:
    expect(page.get_by_role("heading", name="Succeeded")).to_be_visible(timeout=SLOW)
    for node in stage.nodes:
        group = page.locator("section", has=page.get_by_role("heading", name=node["name"]))
        expect(group.get_by_text("switch done")).to_be_visible()
    expect(page.locator(".summary")).to_contain_text("succeeded")


def each_event_once(page: Page, stage: Stage, deployment: str) -> None:
    assert shown_events(page) == event_ids(f"{stage.url}/api/v1", deployment,
                                           stage.http.headers)


def test_a_folder_is_deployed_and_followed_live_through_a_blip(
        page: Page, stage: Stage, tmp_path: Path) -> None:
    signed_in(page, stage)
    page.get_by_label("New project").fill(PROJECT)
    page.get_by_role("button", name="Create project").click()
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_label("New service").fill(SERVICE)
    page.get_by_role("button", name="Create service").click()
    page.get_by_role("link", name=SERVICE, exact=True).click()
    expect(page.get_by_role("heading", name=SERVICE)).to_be_visible()
    stage.http.patch(f"/projects/{PROJECT}/services/{SERVICE}/env", json={"set": [
        {"key": "GREETING", "value": "Hello from the dashboard"},
        {"key": "API_KEY", "value": "not-for-eyes", "secret": True}]}).raise_for_status()

    blip = Blip()
    page.route(EVENTS_URL, blip)
    page.get_by_label("Folder to upload").set_input_files(EXAMPLE)
    expect(page.locator("#folder-note")).to_contain_text("3 files")
    accessible(page)
    page.get_by_role("button", name="Deploy").click()
    deployment = deployment_id(page)
    status = page.get_by_role("status").filter(has_text="Events:")
    expect(status).to_have_text("Events: reconnecting…", timeout=30_000)  # the line dropped
    blip.down = False
    expect(status).to_have_text("Events: live")
    expect(page.locator(".summary")).to_contain_text("running")
    expect(page.locator("section li").filter(has_text="pull started").first).to_be_visible(
        timeout=SLOW)
    screenshot(page, "deploy-live", tmp_path)
    accessible(page)

    succeeded_on_every_node(page, stage)
    expect(status).to_have_text("Events: finished")
    each_event_once(page, stage, deployment)
    accessible(page)
    assert served_everywhere(stage, deployment)["greeting"] == "Hello from the dashboard"


def test_a_second_deploy_from_an_image_is_followed_across_a_reload(
        page: Page, stage: Stage) -> None:
    first = stage.history(PROJECT, SERVICE)[0]
    stage.http.patch(f"/projects/{PROJECT}/services/{SERVICE}/env", json={"set": [
        {"key": "GREETING", "value": "Hello again"}]}).raise_for_status()
    signed_in(page, stage, SERVICE_PAGE + "/deploy")
    page.get_by_label("An image").check()
    page.get_by_label("Image", exact=True).fill(first["image_tag"])
    page.get_by_role("button", name="Deploy").click()
    deployment = deployment_id(page)
    expect(page.locator("[data-seq]").first).to_be_visible()
    page.reload()  # mid-stream: the page replays the stream from its start
    expect(page.get_by_role("status").filter(has_text="Events:")).to_have_text(
        re.compile("Events: (live|finished)"))
    succeeded_on_every_node(page, stage)
    each_event_once(page, stage, deployment)
    page.reload()  # after the end: the same events, once each
    succeeded_on_every_node(page, stage)
    each_event_once(page, stage, deployment)
    assert served_everywhere(stage, deployment)["greeting"] == "Hello again"


def test_a_rollback_from_the_releases_tab_confirms_what_comes_back(
        page: Page, stage: Stage, tmp_path: Path) -> None:
    live, first = stage.history(PROJECT, SERVICE)[:2]
    signed_in(page, stage, SERVICE_PAGE + "/releases")
    expect(page.get_by_role("row").filter(has_text="live")).to_contain_text(live["id"][:8])
    accessible(page)
    screenshot(page, "releases", tmp_path)
    opener = page.get_by_role("button", name=f"Roll back to {first['id'][:8]}")
    opener.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(first["image_tag"])
    expect(dialog.get_by_role("row").filter(has_text="GREETING")).to_contain_text(
        "Hello from the dashboard")
    expect(dialog.get_by_role("row").filter(has_text="API_KEY")).to_contain_text("********")
    expect(dialog).not_to_contain_text("not-for-eyes")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    accessible(page)
    screenshot(page, "rollback", tmp_path)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()

    opener.click()
    dialog.get_by_role("button", name="Roll back").click()
    rollback = deployment_id(page)
    succeeded_on_every_node(page, stage)
    each_event_once(page, stage, rollback)
    answer = served_everywhere(stage, rollback)
    assert answer["greeting"] == "Hello from the dashboard"
    back = stage.history(PROJECT, SERVICE)[0]
    assert (back["id"], back["live"], back["rollback_of"]) == (rollback, True, first["id"])
    assert back["image_tag"] == first["image_tag"]
    page.get_by_role("link", name=SERVICE, exact=True).click()
    expect(page.get_by_role("row").filter(has_text="live")).to_contain_text(rollback[:8])
    accessible(page)
