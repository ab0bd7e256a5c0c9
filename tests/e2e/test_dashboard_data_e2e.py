"""The dashboard's Domains and Databases tabs end to end on the shared stage: the example app
on the first server; in the browser a domain gets its certificate from the stage's pebble
(and its DNS records at the fake Cloudflare), is renewed and removed; a Postgres created with
"redeploy" gives the app DATABASE_URL (in its variables and in the release the redeploy
made), is backed up (verified), restored into a new service, which is then deleted. axe-core
checks each tab in each state."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from dockyard.providers import images
from tests.acme_server import Pebble
from tests.browser import accessible, screenshot, sign_in
from tests.e2e.stage import EXAMPLE, TOKEN, Stage
from tests.live import ADMIN_EMAIL, ADMIN_PASSWORD, wait_until

pytestmark = pytest.mark.slow
PROJECT, SERVICE = "dashdata", "web"
NAME = "dashdata.example.test"
FAST = {"grace_seconds": 0.5, "health_interval_seconds": 0.2}
SLOW = 300_000  # ms: a certificate, a database placed and started, a backup verified
WIDE = """[...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > 376)
  .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().width)}: `
            + (e.textContent || "").slice(0, 40)).slice(-12)"""  # wider than a narrow screen


@pytest.fixture(scope="module")
def web(stage: Stage, pebble: Pebble) -> dict[str, Any]:
    """The example app on the first server, the domain's name resolving there for pebble, a
    Cloudflare credential of this module's own."""
    images.bootstrap_tarball(images.RECIPES["postgres"], images.ImageSettings())
    stage.ensure_service(PROJECT, SERVICE)
    node = stage.nodes[0]
    events = stage.deploy_archive(EXAMPLE, project=PROJECT, service=SERVICE,
                                  server=[node["name"]], **FAST)
    assert events[-1]["status"] == "succeeded", events[-8:]
    pebble.add_a(NAME, node["ip"])
    saved = stage.http.put("/infra/credentials/dashdata-cf",
                           json={"provider": "cloudflare", "token": TOKEN})
    assert saved.status_code == 200, saved.text
    return node


def open_tab(page: Page, stage: Stage, tab: str) -> None:
    sign_in(page, stage.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{stage.url}/#/projects/{PROJECT}/services/{SERVICE}/{tab}")


def test_a_domain_gets_its_certificate_and_dns_then_is_renewed_and_removed(
        page: Page, stage: Stage, web: dict[str, Any], tmp_path: Path) -> None:
    open_tab(page, stage, "domains")
    expect(page.get_by_text("No domains yet")).to_be_visible()
    accessible(page)
    page.get_by_label("Hostname").fill(NAME)
    page.get_by_label("DNS at Cloudflare").select_option("dashdata-cf")
    page.get_by_role("button", name="Add domain").click()
    item = page.get_by_role("listitem", name=NAME)
    expect(item.locator(".state").first).to_have_text("live", timeout=SLOW)
    expect(item).to_contain_text("expires ")
    expect(item.locator(".state").nth(1)).to_have_text("synced")
    expect(item).to_contain_text(web["ip"])
    accessible(page)
    screenshot(page, "domains", tmp_path)
    fits_a_narrow_screen(page)
    item.get_by_role("button", name="Renew certificate").click()
    expect(item).to_contain_text("renewed ", timeout=SLOW)
    item.get_by_role("button", name="Remove").click()
    item.get_by_role("button", name=f"Yes, remove {NAME}").click()
    expect(page.get_by_text("No domains yet")).to_be_visible(timeout=SLOW)
    assert stage.http.get(f"/domains/{NAME}").status_code == 404


def test_a_postgres_reaches_the_app_is_backed_up_and_restored_into_a_new_service(
        page: Page, stage: Stage, web: dict[str, Any], tmp_path: Path) -> None:
    open_tab(page, stage, "databases")
    expect(page.get_by_text(f"No Postgres or Redis in {PROJECT} yet.")).to_be_visible()
    accessible(page)
    create_postgres(page, stage)
    card = page.get_by_role("article", name="postgres", exact=True)
    back_up(card)
    restore(page, card, stage)
    set_schedule(card)
    accessible(page)
    screenshot(page, "databases", tmp_path)
    fits_a_narrow_screen(page)
    delete(page, stage, "postgres-copy")


def fits_a_narrow_screen(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the tab is {width} px wide at a 375 px viewport: {page.evaluate(WIDE)}"
    page.set_viewport_size({"width": 1280, "height": 800})


def create_postgres(page: Page, stage: Stage) -> None:
    page.get_by_label("Kind").select_option("postgres")
    expect(page.get_by_label("Redeploy the project's apps")).to_be_checked()
    page.get_by_role("button", name="Create database").click()
    expect(page.get_by_text(f"{SERVICE}: redeploying as")).to_be_visible(timeout=SLOW)
    given = page.get_by_role("region", name=f"Variables given to {SERVICE}")
    expect(given.get_by_role("cell", name="DATABASE_URL")).to_be_visible()
    expect(given).to_contain_text("********")
    env = stage.http.get(f"/projects/{PROJECT}/services/{SERVICE}/env").json()
    assert {v["key"]: v["source"] for v in env}["DATABASE_URL"] == "injected", env
    wait_until(lambda: released_with(stage, "DATABASE_URL"), "a live release given "
               "DATABASE_URL by the redeploy", 180)


def released_with(stage: Stage, variable: str) -> bool:
    newest = stage.history(PROJECT, SERVICE)[0]
    links = (newest.get("config") or {}).get("links") or []
    return newest["status"] == "succeeded" and variable in {link["variable"] for link in links}


def back_up(card: Locator) -> None:
    card.get_by_role("button", name="Back up now").click()
    expect(card.get_by_text(re.compile(r"Backup \w{8} is good"))).to_be_visible(timeout=SLOW)
    row = card.get_by_role("row").filter(has_text="manual")
    expect(row.get_by_role("cell", name="good", exact=True)).to_be_visible()


def restore(page: Page, card: Locator, stage: Stage) -> None:
    card.get_by_role("button", name=re.compile("^Restore backup")).first.click()
    card.get_by_label(re.compile("into a new service named")).fill("postgres-copy")
    card.get_by_role("button", name="Restore into a new service").click()
    expect(card.get_by_text("into the new service postgres-copy")).to_be_visible(timeout=SLOW)
    copy = page.get_by_role("article", name="postgres-copy", exact=True)
    expect(copy).to_contain_text("DATABASE_COPY_URL")
    shown = stage.http.get(f"/projects/{PROJECT}/stateful/postgres-copy").json()
    assert shown["container_state"] == "running", shown


def set_schedule(card: Locator) -> None:
    card.get_by_label("Schedule (cron, UTC)").fill("0 4 * * *")
    card.get_by_label("Backups kept").fill("3")
    card.get_by_role("button", name="Save schedule").click()
    expect(card.get_by_text("(saved)")).to_be_visible()


def delete(page: Page, stage: Stage, name: str) -> None:
    copy = page.get_by_role("article", name=name, exact=True)
    copy.get_by_role("button", name=f"Delete {name}…").click()
    copy.get_by_label(f"Type {name} to delete it").fill(name)
    copy.get_by_role("button", name=f"Delete {name}", exact=True).click()
    expect(copy).to_have_count(0, timeout=SLOW)
    assert stage.http.get(f"/projects/{PROJECT}/stateful/{name}").status_code == 404
