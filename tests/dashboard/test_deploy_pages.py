"""The Deploy tab, the Deployment page and the Releases tab without real servers: a refused
deploy shows the API's message next to the form; a folder chosen in the browser is packed
there as a tar.gz that Python's tarfile reads back file for file; a deployment to a node agent
the test holds is followed live, through a network blip and a reload, to its failure; a viewer
sees no deploy form. The flows with real servers are in tests/e2e/test_dashboard_e2e.py."""

from __future__ import annotations

import asyncio
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import update

from dockyard.core.platform import Platform
from dockyard.core.servers import register_server
from dockyard.models.enums import ServerStatus
from dockyard.models.tables import Server
from tests.browser import accessible, screenshot
from tests.conftest import make_settings
from tests.dashboard.conftest import Owner, sign_in
from tests.dashboard.streams import EVENTS_URL, Blip, event_ids, shown_events
from tests.live import Live

DEPLOY_URL = re.compile(r"/api/v1/infra/deploy\?")
DEEP = "deep/" + "d" * 60 + "/" + "e" * 60 + "/file.txt"  # > 100 bytes: ustar's prefix field
LONG = "long/" + "x" * 150 + ".txt"  # a name > 100 bytes: a PAX header
FILES = {"app.py": b"print('hello')\n", "Procfile": b"web: python3 app.py\n",
         "static/index.html": b"<h1>hi</h1>", DEEP: b"deep", LONG: b"long",
         "caf\u00e9/\u00fcber.txt": "gr\u00fc\u00df".encode(), "empty": b"",
         "blob.bin": bytes(range(256)) * 13}


class HeldAgent(BaseHTTPRequestHandler):
    """A node agent that holds every request until the test opens `gate`, then refuses it."""

    gate = threading.Event()

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.gate.wait(60)
        body = json.dumps({"detail": "the test's agent refuses"}).encode()
        self.send_response(500)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def held_agent() -> Iterator[tuple[int, threading.Event]]:
    gate = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Held", (HeldAgent,), {"gate": gate}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], gate
    gate.set()
    server.shutdown()


def add_server(plane: Live, workspace_id: str, port: int) -> None:
    """An active server node1 whose agent listens on `port` (plain HTTP)."""
    async def add() -> None:
        platform = Platform.open(make_settings(plane.data_dir, None))
        try:
            server = await register_server(
                platform, workspace_id, name="node1", provider="manual", ip="127.0.0.1",
                agent_port=port, agent_insecure_http=True)
            await platform.db.write(lambda s: s.execute(
                update(Server).where(Server.id == server.id).values(status=ServerStatus.ACTIVE)))
        finally:
            await platform.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        thread.submit(asyncio.run, add()).result()


WIDE = """[...document.querySelectorAll('body *')].filter(e => !e.closest('.table-wrap, pre')
  && e.getBoundingClientRect().right > 376).map(e => e.tagName + '.' + e.className).slice(0, 8)"""


def fits_a_narrow_screen(page: Page) -> None:
    """No horizontal page scroll at 375 px (tables and logs scroll on their own)."""
    page.set_viewport_size({"width": 375, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{page.url} is {width} px wide: {page.evaluate(WIDE)}"
    page.set_viewport_size({"width": 1280, "height": 800})


def owner_api(page: Page, owner: Owner) -> httpx.Client:
    """The API as the signed-in owner (the browser's token)."""
    token = page.evaluate("localStorage.getItem('dockyard.token')")
    return httpx.Client(base_url=owner.url + "/api/v1", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def shop_web(page: Page, owner: Owner) -> httpx.Client:
    """Signed in, with project shop and its app service web."""
    sign_in(page, owner)
    http = owner_api(page, owner)
    for path, body in (("/projects", {"name": "shop"}),
                       ("/projects/shop/services", {"name": "web"})):
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
    fits_a_narrow_screen(page)
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


def test_an_archive_is_sent_as_it_is_with_its_content_type(
        page: Page, owner: Owner, tmp_path: Path) -> None:
    sent: list[tuple[str, bytes]] = []

    def refuse(route: Route) -> None:
        content_type = route.request.headers["content-type"]
        sent.append((content_type, route.request.post_data_buffer or b""))
        route.fulfill(status=413, content_type="application/json",
                      body=json.dumps({"detail": f"{content_type}: too large for the test"}))

    shop_web(page, owner)
    page.route(DEPLOY_URL, refuse)
    page.goto(owner.url + "/#/projects/shop/services/web/deploy")
    page.get_by_label("An archive").check()
    archive = page.get_by_label(re.compile("^Archive"))
    for name, content_type in (("app.tgz", "application/gzip"), ("app.tar", "application/x-tar"),
                               ("APP.ZIP", "application/zip")):
        (tmp_path / name).write_bytes(name.encode() * 1000)
        archive.set_input_files(tmp_path / name)
        page.get_by_role("button", name="Deploy").click()
        expect(page.locator("#deploy-error")).to_have_text(
            f"{content_type}: too large for the test")
        assert sent.pop() == (content_type, name.encode() * 1000)
    (tmp_path / "notes.txt").write_text("not an archive")
    archive.set_input_files(tmp_path / "notes.txt")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("#deploy-error")).to_contain_text("choose a .tar.gz, .tgz, .tar or .zip")
    assert sent == []
    accessible(page)


def test_a_deployment_is_followed_live_through_a_blip_and_a_reload_to_its_failure(
        page: Page, owner: Owner, plane: Live, held_agent: tuple[int, threading.Event],
        tmp_path: Path) -> None:
    port, gate = held_agent
    http = shop_web(page, owner)
    add_server(plane, http.get("/auth/me").json()["workspace_id"], port)
    blip = Blip()
    page.route(EVENTS_URL, blip)
    page.goto(owner.url + "/#/projects/shop/services/web/deploy")
    page.get_by_label("An image").check()
    page.get_by_label("Image", exact=True).fill("registry.test:5000/hello:1")
    page.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"#/deployments/[0-9a-f]{32}$"))
    deployment_id = page.url.rsplit("/", 1)[1]
    status = page.get_by_role("status").filter(has_text="Events:")
    expect(page.get_by_role("heading", name=re.compile("^node1"))).to_be_visible()
    expect(page.locator("[data-seq]").first).to_be_visible()
    expect(status).to_have_text("Events: reconnecting…")  # the line dropped, and stays down
    accessible(page)
    before = shown_events(page)
    gate.set()  # the agent refuses: the deployment fails while the page cannot reach it
    seqs = event_ids(f"{owner.url}/api/v1", deployment_id, http.headers)
    assert before == seqs[:len(before)]
    assert len(before) < len(seqs), "events came while the page could not reach the API"
    blip.down = False
    expect(page.get_by_role("heading", name="Failed")).to_be_visible()
    expect(page.locator(".outcome")).to_contain_text("the test's agent refuses")
    expect(status).to_have_text("Events: finished")
    assert shown_events(page) == seqs, "each event shown once, none lost"
    accessible(page)
    fits_a_narrow_screen(page)
    screenshot(page, "deploy-failed", tmp_path)

    page.reload()
    expect(page.get_by_role("heading", name="Failed")).to_be_visible()
    expect(page.locator(".summary")).to_contain_text("failed")
    assert shown_events(page) == seqs
    page.get_by_role("link", name="web", exact=True).click()
    expect(page.get_by_role("cell", name="failed")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Roll back"))).to_have_count(0)
    accessible(page)
    fits_a_narrow_screen(page)


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
