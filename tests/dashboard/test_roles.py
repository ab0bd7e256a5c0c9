"""Roles in the workspace settings: an admin manages members but not owners and cannot grant
owner; a member sees no admin tab or control, and caps its API token at viewer (the API then
refuses that token a write). The API's refusals are shown next to what caused them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests import browser as browsing
from tests.browser import accessible
from tests.dashboard.conftest import Owner

PASSWORD = "team-password-1234"


@dataclass(frozen=True)
class Team:
    owner: Owner
    admin: str
    member: str


def join(http: httpx.Client, owner: Owner, email: str, role: str) -> None:
    """`email` invited with `role` and accepted as a new account (through the API)."""
    workspace = http.get("/auth/me").json()["workspace_id"]
    made = http.post(f"/workspaces/{workspace}/invitations", json={"email": email, "role": role})
    accepted = httpx.post(owner.url + "/api/v1/invitations/accept",
                          json={"token": made.json()["token"], "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text


@pytest.fixture
def team(owner: Owner) -> Iterator[Team]:
    made = Team(owner, f"admin-{owner.workspace}@example.com",
                f"member-{owner.workspace}@example.com")
    with httpx.Client(base_url=owner.url + "/api/v1", timeout=30) as http:
        login = http.post("/auth/token", data={"username": owner.email,
                                               "password": owner.password})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        join(http, owner, made.admin, "admin")
        join(http, owner, made.member, "member")
        yield made


def tab(page: Page, team: Team, name: str, heading: str) -> None:
    page.goto(f"{team.owner.url}/#/settings/{name}")
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    page.wait_for_load_state("networkidle")


def test_an_admin_manages_members_but_not_the_owner(page: Page, team: Team) -> None:
    browsing.sign_in(page, team.owner.url, team.admin, PASSWORD)
    tab(page, team, "members", "Members")
    owner_row = page.get_by_role("row", name=re.compile(team.owner.email))
    expect(owner_row.get_by_role("button")).to_have_count(0)
    expect(owner_row).to_contain_text("owner")
    member = page.get_by_role("combobox", name=f"Role of {team.member}")
    expect(member.locator("option")).to_have_text(["admin", "member", "viewer"])
    member.select_option("viewer")
    page.get_by_role("button", name=f"Change role of {team.member}").click()
    expect(page.get_by_role("button", name=f"Change role of {team.member}")).to_be_disabled()
    accessible(page)
    page.reload()
    expect(page.get_by_role("combobox", name=f"Role of {team.member}")).to_have_value("viewer")

    tab(page, team, "invitations", "Invitations")
    expect(page.get_by_label("Role").locator("option")).to_have_text(["viewer", "member", "admin"])
    page.get_by_label("Email to invite").fill(team.member)
    page.get_by_role("button", name="Invite").click()
    expect(page.locator("#invite-error")).to_have_text(
        f"{team.member} is already a member of this workspace")
    expect(page.get_by_label("Email to invite")).to_have_attribute(
        "aria-describedby", "invite-error")
    accessible(page)

    tab(page, team, "members", "Members")
    page.get_by_role("button", name=f"Remove {team.member}").click()
    page.get_by_role("button", name=f"Yes, remove {team.member}").click()
    expect(page.get_by_role("row", name=re.compile(team.member))).to_have_count(0)
    tab(page, team, "audit", "Audit history")
    expect(page.get_by_role("cell", name="memberships", exact=True).first).to_be_visible()


def test_a_member_sees_no_admin_tab_and_caps_a_token_at_viewer(page: Page, team: Team) -> None:
    browsing.sign_in(page, team.owner.url, team.member, PASSWORD)
    expect(page.get_by_role("button", name="Create project")).to_be_visible()
    tab(page, team, "audit", "Members")  # an admin tab's address shows the first tab instead
    links = page.get_by_role("navigation", name="Workspace settings").get_by_role("link")
    expect(links).to_have_text(["Members", "API tokens", "Provider credentials",
                                "Notification channels"])
    expect(page.get_by_role("combobox", name=re.compile("^Role of"))).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Remove|Change role)"))).to_have_count(0)
    expect(page.get_by_role("button", name="Leave this workspace")).to_be_visible()

    tab(page, team, "tokens", "API tokens")
    page.get_by_label("Token name").fill("read-only")
    expect(page.get_by_label("Role").locator("option")).to_have_text(
        ["yours (member)", "viewer", "member"])
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_role("region", name="API token read-only").get_by_role(
        "textbox").input_value()
    expect(page.get_by_role("row", name=re.compile("^read-only "))).to_contain_text("viewer")
    accessible(page)
    refused = httpx.post(team.owner.url + "/api/v1/projects", json={"name": "nope"},
                         headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 403
    page.get_by_role("button", name="Revoke token read-only").click()
    page.get_by_role("button", name="Yes, revoke token read-only").click()
    expect(page.get_by_role("row", name=re.compile("^read-only "))).to_contain_text("revoked")

    tab(page, team, "channels", "Notification channels")
    expect(page.get_by_role("button", name="Add channel")).to_have_count(0)
    tab(page, team, "credentials", "Provider credentials")
    expect(page.get_by_role("button", name="Save credential")).to_have_count(0)
    accessible(page)
