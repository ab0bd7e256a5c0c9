# ruff: noqa: F811 - the deploy fixtures (nodes, shop, make_runner) are imported by name
"""`git push` to a real uvicorn serving the API: a real git client, git's own http-backend, the
pre-receive hook deploying through the API onto in-process agents (real nginx, fake Docker,
see tests/deploy/conftest.py). Fetching needs READ, pushing WRITE; another workspace sees
nothing."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from dockyard.api.app import create_app
from dockyard.core.platform import Platform
from dockyard.models.tables import RepoLink, Service
from tests import sqlite_only
from tests.conftest import PASSWORD
from tests.deploy.conftest import (  # noqa: F401
    AgentNode,
    make_runner,
    nodes,
    shop,
)
from tests.deploy.fake_docker import Hold
from tests.pg import free_port

database_url = sqlite_only.database_url  # nothing here depends on the database kind

HISTORY = "/api/v1/infra/deployments/history"
APP = {"Dockerfile": "FROM python:3.11-slim\nCMD [\"python\", \"app.py\"]\n",
       "app.py": "print('hello')\n"}
GIT_TIMEOUT = 120


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient

    def remote(self, token: str, project: str = "shop", service: str = "web") -> str:
        host = self.url.removeprefix("http://")
        return f"http://dockyard:{token}@{host}/git/{project}/{service}.git"


@asynccontextmanager
async def uvicorn_serving(app: FastAPI) -> AsyncIterator[str]:
    """The app on a free loopback port, in this event loop (the database's and the runner's)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def served(settings: Any, platform: Platform, shop: Any, make_runner: Any
                 ) -> AsyncIterator[Served]:
    app = create_app(settings, platform)
    app.state.deploys = make_runner()
    async with uvicorn_serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        yield Served(url, http)


async def new_token(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    answer = await http.post("/api/v1/auth/tokens", headers=headers,
                             json={"name": "git", "password": PASSWORD, **body})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def git_env(home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "d@x.test",
            "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "d@x.test"}


async def git(cwd: Path, *args: str) -> tuple[int, str]:
    """Run git; its exit code and its output (stdout and stderr together)."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, env=git_env(cwd.parent / "home"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"git {' '.join(args)} did not end within {GIT_TIMEOUT} s:\n{out.decode()}")
    return proc.returncode or 0, out.decode()


async def work_tree(tmp_path: Path, files: dict[str, str] = APP) -> tuple[Path, str]:
    """A repository with one commit of `files` on main; its path and the commit."""
    tree = tmp_path / "app"
    tree.mkdir()
    for name, text in files.items():
        (tree / name).write_text(text)
    for args in (("init", "-q", "-b", "main"), ("add", "."), ("commit", "-q", "-m", "first")):
        code, out = await git(tree, *args)
        assert code == 0, out
    code, sha = await git(tree, "rev-parse", "HEAD")
    return tree, sha.strip()


async def history(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    answer = await http.get(HISTORY, params={"project": "shop", "service": "web"},
                            headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def test_a_push_deploys_the_commit_and_prints_its_steps(
        served: Served, shop: Any, nodes: dict[str, AgentNode], tmp_path: Path) -> None:
    token = await new_token(served.http, shop.headers)
    tree, sha = await work_tree(tmp_path)
    code, out = await git(tree, "push", served.remote(token), "main")
    assert code == 0, out
    assert f"remote: deploying {sha[:12]} of 'main' to shop/web" in out
    [deployment] = await history(served.http, shop.headers)
    assert deployment["status"] == "succeeded"
    assert deployment["source_kind"] == "archive"
    assert {k: deployment["source"][k] for k in ("commit", "ref")} == {"commit": sha,
                                                                     "ref": "main"}
    assert f"remote: deployed {deployment['image_tag']}" in out
    assert "remote: node1: " in out  # each server's steps, live
    for node in nodes.values():
        assert await node.serves() == deployment["id"][:8]
    code, refs = await git(tree, "ls-remote", served.remote(token))
    assert refs.split() == [sha, "HEAD", sha, "refs/heads/main"]




async def test_another_branch_is_refused_naming_the_configured_one(
        served: Served, shop: Any, tmp_path: Path) -> None:
    token = await new_token(served.http, shop.headers)
    tree, _ = await work_tree(tmp_path)
    code, out = await git(tree, "push", served.remote(token), "main:dev")
    assert code != 0
    assert ("remote: refused refs/heads/dev: this remote deploys branch 'main' only "
            "(push with `git push dockyard HEAD:main`)") in out
    assert await history(served.http, shop.headers) == []


async def test_a_linked_service_deploys_its_links_branch_only(
        served: Served, shop: Any, platform: Platform, tmp_path: Path) -> None:
    async def link(s: Any) -> None:
        service = await s.scalar(select(Service).where(Service.name == "web"))
        s.add(RepoLink(workspace_id=shop.workspace_id, service_id=service.id,
                       user_id=shop.user_id, repo_url="https://forge.test/team/app.git",
                       repo_key="forge.test/team/app", branch="prod", secret_ciphertext="x"))

    await platform.db.write(link)
    token = await new_token(served.http, shop.headers)
    tree, _ = await work_tree(tmp_path)
    code, out = await git(tree, "push", served.remote(token), "main")
    assert code != 0
    assert "remote: refused refs/heads/main: this remote deploys branch 'prod' only" in out


async def test_a_failed_deployment_fails_the_push_with_its_reason(
        served: Served, shop: Any, nodes: dict[str, AgentNode], tmp_path: Path) -> None:
    nodes["node2"].docker.hold = hold = Hold("start", fail="the container exited at once")
    hold.release.set()
    token = await new_token(served.http, shop.headers)
    tree, _ = await work_tree(tmp_path)
    code, out = await git(tree, "push", served.remote(token), "main")
    assert code != 0
    [reason] = [line for line in out.splitlines()
                if line.startswith("remote: deployment failed: ")]
    assert "node2: the container exited at once" in reason
    assert "[remote rejected] main -> main (pre-receive hook declined)" in out
    [deployment] = await history(served.http, shop.headers)
    assert deployment["status"] == "failed"
    code, refs = await git(tree, "ls-remote", "--heads", served.remote(token))
    assert (code, refs) == (0, "")  # the branch did not move


async def test_a_read_only_token_clones_but_cannot_push(
        served: Served, shop: Any, tmp_path: Path) -> None:
    writer = await new_token(served.http, shop.headers)
    reader = await new_token(served.http, shop.headers, role="viewer")
    tree, sha = await work_tree(tmp_path)
    assert (await git(tree, "push", served.remote(writer), "main"))[0] == 0
    code, out = await git(tmp_path, "clone", "-q", served.remote(reader), "copy")
    assert code == 0, out
    assert (tmp_path / "copy" / "app.py").read_text() == APP["app.py"]
    assert (await git(tmp_path / "copy", "rev-parse", "HEAD"))[1].strip() == sha
    code, out = await git(tree, "push", "-f", served.remote(reader), "HEAD:main")
    assert code != 0
    assert ("remote: your role 'viewer' may not create or change projects, services and "
            "variables") in out


async def test_another_workspaces_token_finds_no_such_service(
        served: Served, stranger: Any, tmp_path: Path) -> None:
    token = await new_token(served.http, stranger.headers)
    tree, _ = await work_tree(tmp_path)
    for args in (("push", served.remote(token), "main"), ("ls-remote", served.remote(token))):
        code, out = await git(tree, *args)
        assert code != 0
        assert "remote: project 'shop' was not found" in out


async def test_no_or_a_wrong_credential_is_asked_for_with_a_basic_challenge(
        served: Served, shop: Any) -> None:
    path = "/git/shop/web.git/info/refs?service=git-receive-pack"
    wrong = "Basic " + base64.b64encode(b"dockyard:dy_wrong").decode()
    for headers in ({}, {"Authorization": wrong}, {"Authorization": "Bearer dy_wrong"}):
        answer = await served.http.get(path, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Basic realm="Dockyard"'
        assert answer.headers["content-type"].startswith("text/plain")


async def test_the_dumb_protocol_and_bad_names_are_refused(served: Served, shop: Any) -> None:
    token = await new_token(served.http, shop.headers)
    auth = {"Authorization": "Basic " + base64.b64encode(f"x:{token}".encode()).decode()}
    dumb = await served.http.get("/git/shop/web.git/info/refs", headers=auth)
    assert dumb.status_code == 404
    assert "only git's smart HTTP protocol" in dumb.text
    bad = await served.http.get("/git/shop/We$b.git/info/refs?service=git-upload-pack",
                                headers=auth)
    assert bad.status_code == 422


async def test_the_git_routes_are_not_in_the_openapi_document(served: Served) -> None:
    paths = (await served.http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/git")]


async def test_a_push_larger_than_gits_post_buffer_arrives_whole(
        served: Served, shop: Any, tmp_path: Path) -> None:
    """git sends a pack over its 1 MiB post buffer chunked, without a Content-Length."""
    token = await new_token(served.http, shop.headers)
    tree, _ = await work_tree(tmp_path)
    blob = os.urandom(3 * 1024 * 1024)
    (tree / "blob.bin").write_bytes(blob)
    for args in (("add", "blob.bin"), ("commit", "-q", "-m", "big")):
        assert (await git(tree, *args))[0] == 0
    code, out = await git(tree, "push", served.remote(token), "main")
    assert code == 0, out
    code, out = await git(tmp_path, "clone", "-q", served.remote(token), "copy")
    assert code == 0, out
    assert (tmp_path / "copy" / "blob.bin").read_bytes() == blob
