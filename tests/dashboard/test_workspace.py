"""Workspace settings and the account page in the browser, against a real control plane: an
invitation made in the UI accepted in another browser by a new viewer who then sees no
control it cannot use; an API token shown once that works; a credential shown masked; a
webhook channel tested against a closed port; a password change that ends the other
sessions; the audit history of it all. axe-core's WCAG A/AA rules hold on every tab and state."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import accessible, screenshot
from tests.dashboard.conftest import Owner, sign_in

VIEWER_PASSWORD = "viewer-pass-1234"
ADMIN_BUTTONS = re.compile(r"^(Invite|Change role|Remove|Revoke|Delete|Save credential|Add channel"
                           r"|Send a test)\b")


@pytest.fixture
def http(owner: Owner) -> Iterator[httpx.Client]:
    """The owner's API client (a login session of its own)."""
    with httpx.Client(base_url=owner.url + "/api/v1", timeout=30) as client:
        login = client.post("/auth/token", data={"username": owner.email,
                                                 "password": owner.password})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        yield client


def settings(page: Page, owner: Owner, tab: str, heading: str) -> None:
    page.goto(f"{owner.url}/#/settings/{tab}")
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    page.wait_for_load_state("networkidle")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def overflowing(page: Page) -> list[str]:
    """The elements that reach past the right edge of the window."""
    return list(page.evaluate(
        "[...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right"
        " > innerWidth + 1).map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 40))"))


def invite(page: Page, email: str, role: str) -> str:
    """Invite `email` in the Invitations tab; the link shown once."""
    page.get_by_label("Email to invite").fill(email)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Invite").click()
    shown = page.get_by_role("region", name=f"Invitation link for {email} ({role})")
    expect(shown).to_contain_text("Shown once.")
    return shown.get_by_role("textbox").input_value()


def test_a_viewer_invited_in_the_ui_accepts_in_another_browser_and_sees_no_controls(
        page: Page, browser: Browser, owner: Owner, http: httpx.Client, tmp_path: Path) -> None:
    for path, name in (("/projects", "roles"), ("/projects/roles/services", "web")):
        assert http.post(path, json={"name": name}).status_code == 201
    viewer = f"viewer-{owner.workspace}@example.com"
    sign_in(page, owner)
    settings(page, owner, "invitations", "Invitations")
    accessible(page)
    link = invite(page, viewer, "viewer")
    assert link == f"{owner.url}/invite#" + link.split("#")[1]
    expect(page.get_by_role("row", name=re.compile(viewer))).to_contain_text("viewer")
    accessible(page)

    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    try:
        guest = context.new_page()
        guest.goto(link)
        expect(guest.get_by_role("heading", name="Join a workspace on Dockyard")).to_be_visible()
        accessible(guest)
        guest.get_by_label("Password", exact=True).fill(VIEWER_PASSWORD)
        guest.get_by_label("Password again").fill("something-else")
        guest.get_by_role("button", name="Accept the invitation").click()
        expect(guest.get_by_role("alert")).to_contain_text("The two passwords differ")
        guest.get_by_label("Password again").fill(VIEWER_PASSWORD)
        guest.get_by_role("button", name="Accept the invitation").click()
        expect(guest.get_by_role("status")).to_contain_text(
            f"you are now viewer in {owner.workspace} as {viewer}, with a new account")
        assert "#" not in guest.url  # the used secret is off the address bar
        accessible(guest)
        guest.get_by_role("link", name="Open the dashboard").click()
        viewer_sees_no_controls(guest, owner)
        guest.goto(link)  # the link works once
        guest.get_by_role("button", name="Accept the invitation").click()
        expect(guest.get_by_role("alert")).to_contain_text("This invitation was used already")
    finally:
        context.close()

    settings(page, owner, "members", "Members")
    row = page.get_by_role("row", name=re.compile(viewer))
    expect(row.get_by_role("combobox", name=f"Role of {viewer}")).to_have_value("viewer")
    accessible(page)
    screenshot(page, "members", tmp_path)


def viewer_sees_no_controls(guest: Page, owner: Owner) -> None:
    """Signed in as the viewer: no button to create, deploy or administer anything."""
    expect(guest.get_by_role("heading", name="Projects")).to_be_visible()
    expect(guest.get_by_text("· viewer")).to_be_visible()
    guest.wait_for_load_state("networkidle")
    expect(guest.get_by_role("button", name="Create project")).to_have_count(0)
    guest.goto(f"{owner.url}/#/settings")
    tabs = guest.get_by_role("navigation", name="Workspace settings").get_by_role("link")
    expect(tabs).to_have_text(["Members", "API tokens", "Provider credentials",
                               "Notification channels"])
    for tab, heading in (("members", "Members"), ("tokens", "API tokens"),
                         ("credentials", "Provider credentials"),
                         ("channels", "Notification channels")):
        settings(guest, owner, tab, heading)
        expect(guest.get_by_role("button", name=ADMIN_BUTTONS)).to_have_count(0)
        expect(guest.get_by_role("combobox", name=re.compile("^Role of"))).to_have_count(0)
        accessible(guest)
    guest.goto(f"{owner.url}/#/projects/roles/services/web")
    expect(guest.get_by_role("heading", name="web", exact=True)).to_be_visible()
    guest.wait_for_load_state("networkidle")
    main = guest.get_by_role("main")
    expect(main.get_by_role("button", name=re.compile("deploy", re.IGNORECASE))).to_have_count(0)
    expect(main.locator("form")).to_have_count(0)
    accessible(guest)


def test_an_invitation_is_revoked_and_a_bad_link_explained(
        page: Page, browser: Browser, owner: Owner) -> None:
    sign_in(page, owner)
    settings(page, owner, "invitations", "Invitations")
    email = f"gone-{owner.workspace}@example.com"
    link = invite(page, email, "member")
    page.get_by_role("button", name="Done, hide it").click()
    expect(page.get_by_role("region", name=re.compile("Invitation link"))).to_have_count(0)
    page.get_by_role("button", name=f"Revoke the invitation of {email}").click()
    accessible(page)
    page.get_by_role("button", name=f"Yes, revoke the invitation of {email}").click()
    expect(page.get_by_text("No pending invitations.")).to_be_visible()
    context = browser.new_context(bypass_csp=True)
    try:
        guest = context.new_page()
        for address, message in ((link, "This invitation was revoked"),
                                 (link[:-4] + "xxxx", "This link holds no valid invitation")):
            guest.goto(address)
            guest.get_by_label("Password", exact=True).fill(VIEWER_PASSWORD)
            guest.get_by_label("Password again").fill(VIEWER_PASSWORD)
            guest.get_by_role("button", name="Accept the invitation").click()
            expect(guest.get_by_role("alert")).to_contain_text(message)
            accessible(guest)
    finally:
        context.close()


def test_token_credential_channel_password_and_their_audit_history(
        page: Page, owner: Owner, http: httpx.Client, tmp_path: Path) -> None:
    sign_in(page, owner)
    settings(page, owner, "tokens", "API tokens")
    accessible(page)
    page.get_by_label("Token name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_role("region", name="API token ci")
    expect(shown).to_contain_text("Shown once.")
    secret = shown.get_by_role("textbox").input_value()
    me = httpx.get(owner.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200
    assert me.json()["user"]["email"] == owner.email
    expect(page.get_by_role("row", name=re.compile("^ci "))).to_contain_text("active")
    accessible(page)
    screenshot(page, "tokens", tmp_path)
    page.reload()
    expect(page.get_by_role("row", name=re.compile("^ci "))).to_contain_text(secret[:10])
    expect(page.get_by_role("region", name="API token ci")).to_have_count(0)
    assert secret not in page.content()

    credential_is_masked(page, owner)
    failure = channel_test_fails(page, owner, http)
    for number in range(10):  # for a second page of credentials' history
        http.put(f"/infra/credentials/cf{number}", json={"provider": "cloudflare", "token": "t"})
    password_change_ends_other_sessions(page, owner, http, secret)
    audit_lists_the_changes(page, owner, failure, tmp_path)


def credential_is_masked(page: Page, owner: Owner) -> None:
    settings(page, owner, "credentials", "Provider credentials")
    accessible(page)
    page.get_by_label("Credential name").fill("do")
    page.get_by_label("Token").fill("dop_v1_not-a-real-token")
    expect(page.get_by_label("Token")).to_have_attribute("type", "password")
    page.get_by_role("button", name="Save credential").click()
    expect(page.get_by_role("row", name=re.compile("^do digitalocean"))).to_contain_text("********")
    assert "dop_v1_not-a-real-token" not in page.content()
    page.get_by_label("Credential name").fill("Bad Name")
    page.get_by_label("Token").fill("x")
    page.get_by_role("button", name="Save credential").click()
    expect(page.locator("#credential-error")).not_to_be_empty()
    accessible(page)


def channel_test_fails(page: Page, owner: Owner, http: httpx.Client) -> str:
    """A webhook to a closed port: its test fails with the API's message, shown as it is."""
    settings(page, owner, "channels", "Notification channels")
    accessible(page)
    page.get_by_label("Kind").select_option("email")
    page.get_by_label("Email address").fill("ops@example.com")
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator("#channel-error")).to_contain_text("email channels need an SMTP server")
    expect(page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")
    accessible(page)
    page.get_by_label("Kind").select_option("webhook")
    url = f"http://127.0.0.1:{closed_port()}/hook"
    page.get_by_label("URL to POST to").fill(url)
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_role("region", name=re.compile("Signing secret"))).to_contain_text(
        "Shown once.")
    target = http.get("/notification-channels").json()[0]
    send = page.get_by_role("button", name=f"Send a test to webhook {target['target']}")
    send.click()
    expect(page.get_by_role("alert").filter(has_text="Test failed")).to_be_visible()
    deliveries = http.get(f"/notification-channels/{target['id']}/deliveries").json()
    error = deliveries[0]["last_error"]
    assert error
    expect(page.get_by_role("alert").filter(has_text="Test failed")).to_have_text(
        f"Test failed: {error}")
    page.get_by_role("button", name=f"Deliveries of webhook {target['target']}").click()
    expect(page.get_by_role("table").filter(has_text="Dockyard test notification")).to_contain_text(
        "failed")
    accessible(page)
    return error


def password_change_ends_other_sessions(
        page: Page, owner: Owner, http: httpx.Client, token: str) -> None:
    page.goto(owner.url + "/#/account")
    expect(page.get_by_role("heading", name="Your sessions")).to_be_visible()
    expect(page.get_by_text("This session")).to_be_visible()
    accessible(page)
    page.get_by_label("Current password").fill("wrong-password")
    page.get_by_label("New password").fill("a-new-password-42")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_contain_text("not correct")
    page.get_by_label("Current password").fill(owner.password)
    page.get_by_label("New password").fill("a-new-password-42")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status").filter(has_text="Password changed")).to_have_text(
        "Password changed. Ended 1 other session and revoked 1 API token; this session goes on.")
    expect(page.get_by_role("button", name=re.compile("^End the session"))).to_have_count(0)
    accessible(page)
    assert http.get("/auth/me").status_code == 401
    assert httpx.get(owner.url + "/api/v1/auth/me",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 401
    login = httpx.post(owner.url + "/api/v1/auth/token",
                       data={"username": owner.email, "password": "a-new-password-42"})
    other = {"Authorization": f"Bearer {login.json()['access_token']}"}
    page.reload()
    expect(page.get_by_text("This session")).to_be_visible()
    page.get_by_role("button", name=re.compile("^End the session of python-httpx")).click()
    expect(page.get_by_role("button", name=re.compile("^End the session"))).to_have_count(0)
    assert httpx.get(owner.url + "/api/v1/auth/me", headers=other).status_code == 401


def audit_lists_the_changes(page: Page, owner: Owner, failure: str, tmp_path: Path) -> None:
    settings(page, owner, "audit", "Audit history")
    table = page.get_by_role("table")
    for kind in ("api_tokens", "provider_credentials", "notification_channels"):
        expect(table.get_by_role("cell", name=kind, exact=True).first).to_be_visible()
    expect(table.get_by_text("revoked_at").first).to_be_visible()  # the password change's
    accessible(page)
    screenshot(page, "audit", tmp_path)
    page.get_by_label("Table").select_option("provider_credentials")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Show").click()
    rows = table.get_by_role("row")
    expect(rows).to_have_count(11)  # the header and 10 of the 11 credentials, newest first
    expect(rows.nth(1)).to_contain_text("cf9")
    page.get_by_role("button", name="Older").click()
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(rows).to_have_count(2)  # the one set in the UI, first of all
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    table.locator("details summary").first.click()
    expect(table).to_contain_text("name: do")
    expect(table).to_contain_text("token_ciphertext: <hidden>")
    accessible(page)
    page.get_by_role("button", name="Newer").click()
    expect(rows.nth(1)).to_contain_text("cf9")
    assert failure not in page.content()  # deliveries are not audited rows


def test_settings_and_account_fit_a_narrow_screen_and_a_workspace_is_created(
        page: Page, owner: Owner) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, owner)
    for route in ("members", "invitations", "tokens", "credentials", "channels", "audit"):
        page.goto(f"{owner.url}/#/settings/{route}")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"settings/{route} is {width} px wide: {overflowing(page)}"
        accessible(page)
    page.goto(owner.url + "/#/account")
    page.get_by_label("Workspace name").fill(f"{owner.workspace}-two")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    page.goto(owner.url + "/#/settings")
    expect(page.get_by_role("heading", name=f"Workspace {owner.workspace}-two")).to_be_visible()
    page.goto(owner.url + "/#/account")
    page.get_by_label("Workspace name").fill("Not A Name!")
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("#workspace-error")).to_contain_text("name")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"account is {width} px wide at a 375 px viewport"
    accessible(page)
