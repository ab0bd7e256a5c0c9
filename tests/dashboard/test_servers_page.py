"""The servers page on a control plane without servers or a DigitalOcean credential: the empty
inventory, the provision form showing the API's refusals as its messages; and the overview's
never-deployed service. Each state passes axe-core's WCAG A/AA rules. The inventory with servers
is tested end to end (tests/e2e/test_dashboard_servers_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser import accessible, screenshot
from tests.dashboard.conftest import Owner, sign_in


def api(owner: Owner) -> httpx.Client:
    """The owner's API client (a bearer token of its own)."""
    token = httpx.post(f"{owner.url}/api/v1/auth/token",
                       data={"username": owner.email, "password": owner.password})
    token.raise_for_status()
    return httpx.Client(base_url=f"{owner.url}/api/v1", headers={
        "Authorization": f"Bearer {token.json()['access_token']}"})


def test_the_empty_inventory_and_the_provision_refusals(page: Page, owner: Owner,
                                                        tmp_path: Path) -> None:
    with api(owner) as http:
        refusal = http.post("/infra/servers/provision",
                            json={"region": "fra1", "size": "s-1vcpu-1gb"})
        no_sizes = http.get("/infra/sizes")
    assert refusal.status_code >= 400
    assert no_sizes.status_code == 404
    sign_in(page, owner)
    page.get_by_role("link", name="Servers").click()
    expect(page.get_by_role("heading", name="Servers", exact=True)).to_be_visible()
    expect(page.get_by_text("No servers yet.")).to_be_visible()
    options = page.locator("#provision-options-error")
    expect(options).to_have_text(no_sizes.json()["detail"])
    expect(options).to_contain_text("no credential named 'digitalocean'")
    accessible(page)
    page.get_by_label("Region").fill("fra1")
    page.get_by_label("Size").fill("s-1vcpu-1gb")
    page.get_by_role("button", name="Provision").click()
    expect(page.locator("#provision-error")).to_have_text(refusal.json()["detail"])
    accessible(page)
    screenshot(page, "servers-empty", tmp_path)


def test_the_overview_shows_a_never_deployed_service(page: Page, owner: Owner) -> None:
    with api(owner) as http:
        for path, body in (("/projects", {"name": "shop"}),
                           ("/projects/shop/services", {"name": "web"})):
            http.post(path, json=body).raise_for_status()
    sign_in(page, owner)
    project = page.get_by_role("region", name="shop")
    row = project.get_by_role("row").filter(has=page.get_by_role("link", name="web"))
    expect(row).to_contain_text("never deployed")
    expect(row.get_by_role("cell").nth(1)).to_have_text("none")
    expect(row.get_by_role("cell").nth(3)).to_have_text("0")
    accessible(page)
    row.get_by_role("link", name="web").click()
    expect(page.get_by_role("heading", name="web")).to_be_visible()
