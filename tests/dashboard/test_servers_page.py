"""The servers page on a control plane without servers or a DigitalOcean credential: the empty
inventory, the provision form showing the API's refusals as its messages; with the fake
DigitalOcean (each droplet's agent a real process started from its user-data, as in
tests/cli/test_provision_cli.py): a server provisioned from the form with its steps shown live,
its agent's upgrade (its recorded version made older) refused with the agent's reason, its
destruction refused under the managed-tag rule, then done. And the overview's never-deployed
service. Each state passes axe-core's WCAG A/AA rules. The inventory of the namespace cluster is
tested end to end (tests/e2e/test_dashboard_servers_e2e.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from dockyard.agent.upgrade import NOT_FROM_BUNDLE
from dockyard.core.platform import Platform
from dockyard.models.tables import Server
from dockyard.providers.digitalocean import MANAGED_RULE, MANAGED_TAG
from tests import browser as browsing
from tests.api.provision.conftest import droplets, fake
from tests.browser import accessible, screenshot
from tests.cli.test_provision_cli import this_host
from tests.conftest import make_settings
from tests.dashboard.conftest import Owner, sign_in
from tests.fakes.digitalocean import TOKEN, FakeDigitalOcean
from tests.live import ADMIN_EMAIL, ADMIN_PASSWORD, Live, bring_up, ok, start, stop

__all__ = ["droplets", "fake"]  # fixtures
OLD_AGENT = "0.0.1+0123456789"
READY = 60_000  # ms: the droplet boots, its agent starts and answers a signed call


@pytest.fixture
def cloud(tmp_path: Path, fake: FakeDigitalOcean) -> Iterator[Live]:
    """A control plane on a non-loopback address whose DigitalOcean is the fake, with its
    token stored (as test_provision_cli's), that does not poll agents: a version the test
    records stays until it is upgraded."""
    base = tmp_path / "live"
    env, url = start(base)
    host = this_host()
    url = f"http://{host}:{env['DOCKYARD_PORT']}"
    env.update(DOCKYARD_DIGITALOCEAN_API_URL=fake.base_url, DOCKYARD_HOST=host,
               DOCKYARD_PUBLIC_URL=url, DOCKYARD_AGENT_POLL_SECONDS="0",
               DOCKYARD_PROVISION_POLL_SECONDS="0.1", DOCKYARD_DIGITALOCEAN_RETRY_SECONDS="0")
    try:
        live = Live(url, env, base, bring_up(env))
        ok(live.run("credentials", "set", "digitalocean", "--provider", "digitalocean",
                    input=f"{TOKEN}\n"))
        yield live
    finally:
        stop(env)


def record_agent_version(data_dir: Path, version: str) -> None:
    """Every server's recorded agent version, written in the control plane's database."""
    async def write() -> None:
        platform = Platform.open(make_settings(data_dir, None))
        try:
            await platform.db.write(lambda s: s.execute(update(Server).values(
                agent_version=version)))
        finally:
            await platform.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        thread.submit(asyncio.run, write()).result()


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
    page.get_by_role("link", name="Servers", exact=True).click()
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


def test_a_server_is_provisioned_live_and_destroyed_under_the_managed_tag_rule(
        page: Page, cloud: Live, fake: FakeDigitalOcean, tmp_path: Path) -> None:
    browsing.sign_in(page, cloud.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_role("link", name="Servers", exact=True).click()
    expect(page.get_by_text("No servers yet.")).to_be_visible()
    page.get_by_label("Region").select_option("fra1")  # waits for the API's regions
    page.get_by_label("Size").select_option("s-1vcpu-1gb")
    expect(page.locator("#provision-options-error")).to_be_empty()
    page.get_by_label("Name prefix").fill("web")
    page.get_by_role("button", name="Provision").click()
    progress = page.get_by_role("list", name="Provisioning progress")
    expect(progress).to_contain_text("creating")
    expect(page.get_by_text("1 ready, 0 failed")).to_be_visible(timeout=READY)
    for step in ("created", "active", "ready"):
        expect(progress).to_contain_text(step)
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="web-"))
    expect(row).to_contain_text("active")
    expect(row).to_contain_text(MANAGED_TAG)
    accessible(page)
    screenshot(page, "servers-provisioned", tmp_path)
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.set_viewport_size({"width": 1280, "height": 800})
    record_agent_version(cloud.data_dir, OLD_AGENT)
    page.reload()
    expect(row).to_contain_text(OLD_AGENT)
    row.get_by_role("button", name="Upgrade the agent of web-").click()
    expect(row.get_by_role("alert").filter(has_text=NOT_FROM_BUNDLE)).to_be_visible()
    accessible(page)
    [droplet] = fake.state.droplets.values()
    droplet["tags"] = [t for t in droplet["tags"] if t != MANAGED_TAG]  # made unmanaged
    row.get_by_role("button", name="Destroy web-").click()
    confirm = row.get_by_role("button", name="Yes, destroy web-")
    confirm.click()
    expect(row.get_by_role("alert").filter(has_text=MANAGED_RULE)).to_be_visible()
    accessible(page)
    droplet["tags"].append(MANAGED_TAG)
    confirm.click()
    expect(page.get_by_text("No servers yet.")).to_be_visible()
    assert fake.state.droplets == {}


def test_a_viewer_sees_no_provision_form_and_no_new_project_form(page: Page, owner: Owner) -> None:
    email = f"viewer-{owner.workspace}@example.com"
    with api(owner) as http:
        workspace = http.get("/auth/me").json()["workspace_id"]
        invited = http.post(f"/workspaces/{workspace}/invitations",
                            json={"email": email, "role": "viewer"})
        assert invited.status_code == 201, invited.text
        accepted = http.post("/invitations/accept", headers={"Authorization": ""},
                             json={"token": invited.json()["token"], "password": owner.password})
        assert accepted.status_code == 200, accepted.text
    browsing.sign_in(page, owner.url, email, owner.password)
    expect(page.get_by_text(f"{email} · viewer")).to_be_visible()
    expect(page.get_by_label("New project")).to_have_count(0)
    page.get_by_role("link", name="Servers", exact=True).click()
    expect(page.get_by_text("No servers yet.")).to_be_visible()
    expect(page.get_by_role("heading", name="Provision droplets on DigitalOcean")).to_have_count(0)
    accessible(page)
