"""The Deploy tab, the Deployment page and the Releases tab without servers: a refused deploy
shows the API's message next to the form; a folder chosen in the browser is packed there as a
tar.gz that Python's tarfile reads back file for file; a viewer sees no deploy form. The flows
with real servers are in tests/e2e/test_dashboard_e2e.py."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser import accessible
from tests.dashboard.conftest import Owner, sign_in

DEPLOY_URL = re.compile(r"/api/v1/infra/deploy\?")
DEEP = "deep/" + "d" * 60 + "/" + "e" * 60 + "/file.txt"  # > 100 bytes: ustar's prefix field
LONG = "long/" + "x" * 150 + ".txt"  # a name > 100 bytes: a PAX header
FILES = {"app.py": b"print('hello')\n", "Procfile": b"web: python3 app.py\n",
         "static/index.html": b"<h1>hi</h1>", DEEP: b"deep", LONG: b"long",
         "caf\u00e9/\u00fcber.txt": "gr\u00fc\u00df".encode(), "empty": b"",
         "blob.bin": bytes(range(256)) * 13}


def owner_api(page: Page, owner: Owner) -> httpx.Client:
    """The API as the signed-in owner (the browser's token)."""
    token = page.evaluate("localStorage.getItem('dockyard.token')")
    return httpx.Client(base_url=owner.url + "/api/v1", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def shop_web(page: Page, owner: Owner) -> httpx.Client:
    """Signed in, with project shop and its app service web."""
    sign_in(page, owner)
    http = owner_api(page, owner)
    for path, body in (("/projects", {"name": "shop"}), ("/projects/shop/services", {"name": "web"})):
        answer = http.post(path, json=body)
        assert answer.status_code == 201, answer.text
    return http


def test_a_refused_deploy_shows_the_apis_message_next_to_the_form(
        page: Page, owner: Owner) -> None:
    shop_web(page, owner)
    page.goto(owner.url + "/#/projects/shop/services/web/deploy")
    accessible(page)
    page.get_by_label("An image").check()
    page.get_by_label("Image", exact=True).fill("registry.test:5000/hello:1")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#deploy-error")).to_contain_text("there is no active server to deploy to")
    expect(page.get_by_role("button", name="Deploy")).to_have_attribute(
        "aria-describedby", "deploy-error")
    accessible(page)
    page.get_by_label("A git repository").check()
    page.get_by_label("Repository URL").fill("https://git.example.test/shop.git")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#deploy-error")).to_contain_text("no active server")
    accessible(page)
    page.goto(owner.url + "/#/projects/shop/services/web/releases")
    expect(page.get_by_text("No deployments yet.")).to_be_visible()
    accessible(page)


def test_a_folder_is_packed_in_the_browser_as_a_tar_gz(
        page: Page, owner: Owner, tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    for name, data in {**FILES, ".git/config": b"[core]"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    sent: list[tuple[str, str, bytes]] = []

    def refuse(route: Route) -> None:
        request = route.request
        sent.append((request.url, request.headers["content-type"], request.post_data_buffer or b""))
        route.fulfill(status=422, content_type="application/json",
                      body=json.dumps({"detail": "refused by the test"}))

    shop_web(page, owner)
    page.route(DEPLOY_URL, refuse)
    page.goto(owner.url + "/#/projects/shop/services/web/deploy")
    page.get_by_label("Folder to upload").set_input_files(folder)
    expect(page.locator("#folder-note")).to_contain_text(f"{len(FILES)} files")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#deploy-error")).to_have_text("refused by the test")
    accessible(page)

    [(url, content_type, body)] = sent
    assert content_type == "application/gzip"
    assert httpx.URL(url).params == httpx.QueryParams({"project": "shop", "service": "web"})
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        members = archive.getmembers()
        assert all(member.isfile() and member.mode == 0o644 for member in members)
        read = {m.name: archive.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert read == FILES
    assert [m.name for m in members] == sorted(FILES)


def test_a_viewer_sees_no_deploy_form(page: Page, owner: Owner) -> None:
    http = shop_web(page, owner)
    workspace = http.get("/auth/me").json()["workspace_id"]
    email = f"viewer-{owner.workspace}@example.com"
    invited = http.post(f"/workspaces/{workspace}/invitations",
                        json={"email": email, "role": "viewer"})
    assert invited.status_code == 201, invited.text
    accepted = httpx.post(owner.url + "/api/v1/invitations/accept",
                          json={"token": invited.json()["token"], "password": owner.password})
    assert accepted.status_code == 200, accepted.text
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, Owner(owner.url, email, owner.password, owner.workspace))
    page.goto(owner.url + "/#/projects/shop/services/web/deploy")
    expect(page.get_by_text("Your role (viewer) cannot deploy.")).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    accessible(page)
