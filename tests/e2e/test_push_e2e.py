"""Push to deploy end to end on the 3-node namespace cluster: `git push` of the example app
through the CLI's remote deploys it and prints its steps, a second push under a strict client
fails no request, a push of another branch is refused;
a GitHub-format webhook with a valid signature deploys the pushed commit of a private
repository (served by a real `git http-backend` behind Basic auth), one with a bad signature
and a redelivery start nothing; a pull request opened, updated and closed creates, updates and
removes its preview, checked on the servers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.e2e.load import under_strict_load
from tests.e2e.stage import EXAMPLE, Stage
from tests.fakes.git_server import GitServer
from tests.hooks import forges
from tests.live import DOCKYARD, ok, wait_until

pytestmark = pytest.mark.slow
FORGE_TOKEN = "forge-private-token"
SETTLED = ("succeeded", "failed", "cancelled")


def example_files(greeting: str) -> dict[str, str]:
    """The example app whose default greeting (what GET /api answers) is `greeting`."""
    files = {path.name: path.read_text() for path in EXAMPLE.iterdir() if path.is_file()}
    files["app.py"] = files["app.py"].replace('"Hello from Dockyard"', repr(greeting))
    assert repr(greeting) in files["app.py"]
    return files


def git(work: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    identity = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
                "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.test",
                "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", "-C", str(work), *args], capture_output=True, text=True,
                          env={**(env or os.environ), **identity}, timeout=900, check=False)


def commit(work: Path, greeting: str) -> None:
    for name, text in example_files(greeting).items():
        (work / name).write_text(text)
    assert git(work, "add", "--all").returncode == 0
    assert git(work, "commit", "--quiet", "-m", greeting).returncode == 0


def greetings(stage: Stage, host: str) -> set[str]:
    """What GET /api of `host` answers on each server (the status when it is not the app)."""
    seen = set()
    for node in stage.nodes:
        answer = stage.app(node, host)
        ok_json = answer.status_code == 200 and "json" in answer.headers.get("content-type", "")
        seen.add(answer.json()["greeting"] if ok_json else f"HTTP {answer.status_code}")
    return seen


def test_git_push_deploys_the_example_and_prints_its_steps(stage: Stage, tmp_path: Path
                                                            ) -> None:
    stage.ensure_service("pushed", "web")
    work = tmp_path / "hello"
    work.mkdir()
    assert git(work, "init", "--quiet", "-b", "main").returncode == 0
    commit(work, "pushed with git")
    remote = ok(subprocess.run([DOCKYARD, "git", "remote", "-p", "pushed", "-s", "web"],
                               cwd=work, env=stage.env, capture_output=True, text=True,
                               timeout=60, check=False))
    assert f"{stage.url}/git/pushed/web.git" in remote
    token = stage.http.headers["Authorization"].split()[1]
    assert token not in (work / ".git" / "config").read_text()  # git asks the CLI for it
    pushed = git(work, "push", "dockyard", "main", env=stage.env)
    assert pushed.returncode == 0, pushed.stderr
    steps = [line for line in pushed.stderr.splitlines() if line.startswith("remote:")]
    assert any("build" in line for line in steps), pushed.stderr
    assert any("now serving the new release" in line for line in steps), pushed.stderr
    assert any("remote: deployed " in line for line in steps), pushed.stderr
    assert greetings(stage, "web.pushed.localhost") == {"pushed with git"}
    [release] = stage.history("pushed", "web")
    assert release["status"] == "succeeded"
    head = git(work, "rev-parse", "HEAD").stdout.strip()
    assert head in str(release["source"]), release["source"]

    commit(work, "pushed again")
    pushes: list[subprocess.CompletedProcess[str]] = []
    tally = under_strict_load(stage, "web.pushed.localhost", lambda: pushes.append(
        git(work, "push", "dockyard", "main", env=stage.env)))
    print(f"git push under a strict client: {tally.ok} ok, {tally.failed} failed")
    assert pushes[0].returncode == 0, pushes[0].stderr
    assert tally.failed == 0, tally.errors
    assert tally.ok > 100
    assert greetings(stage, "web.pushed.localhost") == {"pushed again"}

    assert git(work, "checkout", "--quiet", "-b", "feature").returncode == 0
    commit(work, "from a feature branch")
    refused = git(work, "push", "dockyard", "feature", env=stage.env)
    assert refused.returncode != 0
    assert "refs/heads/feature" in refused.stderr, refused.stderr
    assert "'main'" in refused.stderr, refused.stderr
    assert len(stage.history("pushed", "web")) == 2
    assert greetings(stage, "web.pushed.localhost") == {"pushed again"}


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """A private repository (Basic auth with a token) holding the example app on main."""
    server = GitServer(tmp_path_factory.mktemp("forge"), [("x-access-token", FORGE_TOKEN)])
    server.start()
    server.create("hello")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secret(stage: Stage, forge: GitServer) -> str:
    """hooked/web linked to the forge's repository, previews on; the webhook secret."""
    stage.ensure_service("hooked", "web")
    body = {"repo_url": forge.url_of("hello"), "branch": "main", "previews": True,
            "token": FORGE_TOKEN}
    answer = stage.http.put("/projects/hooked/services/web/repo-link", json=body)
    assert answer.status_code == 200, answer.text
    assert FORGE_TOKEN not in answer.text
    found: str = answer.json()["secret"]
    return found


def deliver(stage: Stage, sent: forges.Sent) -> httpx.Response:
    return httpx.post(f"{stage.url}/api/v1/hooks/{sent.provider}", content=sent.body,
                      headers=sent.headers, timeout=60)


def started(answer: httpx.Response, outcome: str = "deployed") -> str:
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert result["outcome"] == outcome, result
    deployment_id: str = result["deployment_id"]
    return deployment_id


def settled(stage: Stage, deployment_id: str) -> dict[str, Any]:
    def status() -> str:
        status: str = stage.http.get(f"/infra/deployments/{deployment_id}").json()["status"]
        return status

    wait_until(lambda: status() in SETTLED, f"deployment {deployment_id} ends", timeout=600)
    found: dict[str, Any] = stage.http.get(f"/infra/deployments/{deployment_id}").json()
    assert found["status"] == "succeeded", found
    return found


def test_a_signed_push_deploys_once_and_a_bad_signature_nothing(
        stage: Stage, forge: GitServer, secret: str) -> None:
    sha = forge.commit("hello", example_files("from the forge"))
    push = forges.github_push(forge.url_of("hello"), "refs/heads/main", sha)
    forged = deliver(stage, forges.github("push", push, "not-the-secret"))
    assert forged.status_code == 401, forged.text
    assert stage.history("hooked", "web") == []

    signed = forges.github("push", push, secret)
    deployment = settled(stage, started(deliver(stage, signed)))
    assert sha in str(deployment["source"]), deployment["source"]
    assert FORGE_TOKEN not in str(deployment)
    assert greetings(stage, "web.hooked.localhost") == {"from the forge"}

    again = deliver(stage, signed)  # the forge redelivers the same delivery id
    assert again.status_code == 200, again.text
    assert [r["outcome"] for r in again.json()["results"]] == ["duplicate"]
    assert len(stage.history("hooked", "web")) == 1
    listed = stage.http.get("/projects/hooked/services/web/repo-link/deliveries").json()
    assert [(d["delivery_id"], d["outcome"]) for d in listed] == [(signed.delivery, "deployed")]


def on_servers(stage: Stage, site: str) -> list[str]:
    """The containers (any state) labelled with `site` on every server."""
    found = []
    for node in stage.nodes:
        engine = docker.DockerClient(base_url=stage.docker_socket(node))
        try:
            found += [c.name for c in engine.containers.list(
                all=True, filters={"label": f"dockyard.service={site}"})]
        finally:
            engine.close()
    return found


def test_a_pull_request_gets_a_preview_that_follows_it_and_goes_when_closed(
        stage: Stage, forge: GitServer, secret: str) -> None:
    url, host = forge.url_of("hello"), "pr-7.web.hooked.localhost"
    main_release = stage.history("hooked", "web")[0]["id"]
    first = forge.commit("hello", example_files("preview one"), branch="feature")
    opened = forges.github("pull_request",
                           forges.github_pull(url, "opened", 7, first, "feature"), secret)
    settled(stage, started(deliver(stage, opened)))
    assert greetings(stage, host) == {"preview one"}
    assert on_servers(stage, "hooked-web-pr-7")

    second = forge.commit("hello", example_files("preview two"), branch="feature")
    synced = forges.github("pull_request",
                           forges.github_pull(url, "synchronize", 7, second, "feature"), secret)
    settled(stage, started(deliver(stage, synced)))
    assert greetings(stage, host) == {"preview two"}
    assert greetings(stage, "web.hooked.localhost") == {"from the forge"}
    assert stage.history("hooked", "web")[0]["id"] == main_release
    previews = stage.http.get("/projects/hooked/previews").json()
    assert [(p["pull_request"], p["host"]) for p in previews] == [(7, host)], previews

    closed = forges.github("pull_request",
                           forges.github_pull(url, "closed", 7, second, "feature"), secret)
    answer = deliver(stage, closed)
    assert [r["outcome"] for r in answer.json()["results"]] == ["removed"], answer.text
    assert on_servers(stage, "hooked-web-pr-7") == []
    assert "preview two" not in greetings(stage, host)
    assert stage.http.get("/projects/hooked/services/web-pr-7").status_code == 404
    assert stage.http.get("/projects/hooked/previews").json() == []
    assert greetings(stage, "web.hooked.localhost") == {"from the forge"}

