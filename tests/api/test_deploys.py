"""Deploy endpoints without Docker: validation at the edge, one deployment per service at a
time, failures that stream their reason and free the service, history, configs, replay."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from dockyard.api.app import create_app
from dockyard.core import deployments
from dockyard.core.servers import register_server
from dockyard.models.deploys import DeployRequest
from dockyard.models.enums import Role, ServerStatus
from dockyard.models.tables import Server
from tests.ports import free_port

P = "/api/v1/projects"
DEPLOY = "/api/v1/infra/deploy"
HISTORY = "/api/v1/infra/deployments/history"
IMAGE_BODY = {"project": "shop", "service": "web",
              "source": {"kind": "image", "image": "registry.test:5000/hello:1"}}


async def add_server(platform, owner, port: int, name: str = "node1") -> None:
    server = await register_server(platform, owner.workspace_id, name=name, provider="manual",
                                   ip="127.0.0.1", agent_port=port, agent_insecure_http=True)

    async def activate(s: Any) -> None:
        await s.execute(update(Server).where(Server.id == server.id)
                        .values(status=ServerStatus.ACTIVE))

    await platform.db.write(activate)


def closed_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture
def silent_agent() -> Iterator[int]:
    """A port that accepts connections and never answers: a deployment there stays active."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def events_of(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.headers["content-type"].startswith("text/event-stream"), answer.text
    return [json.loads(line[len("data: "):]) for line in answer.text.splitlines()
            if line.startswith("data: ")]


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_a_deploy_with_no_server_is_refused_and_leaves_nothing(client, shop):
    answer = await client.post(DEPLOY, json=IMAGE_BODY, headers=shop.headers)
    assert answer.status_code == 422
    assert "no active server" in answer.json()["detail"]
    history = await client.get(HISTORY, params={"project": "shop", "service": "web"},
                               headers=shop.headers)
    assert history.json() == []


@pytest.mark.parametrize(("source", "where"), [
    ({"kind": "image", "image": "Not An Image"}, "image"),
    ({"kind": "image", "image": "x" * 600}, "image"),
    ({"kind": "git", "url": "--upload-pack=evil"}, "url"),
    ({"kind": "git", "url": "https://example.test/app.git", "ref": "-x"}, "ref"),
    ({"kind": "git", "url": "https://example.test/app.git", "ref": "a b"}, "ref"),
    ({"kind": "ftp", "url": "x"}, "source"),
])
async def test_bad_sources_are_refused_at_the_edge(client, shop, source, where):
    answer = await client.post(DEPLOY, json={**IMAGE_BODY, "source": source}, headers=shop.headers)
    assert answer.status_code == 422, answer.text
    assert any(where in ".".join(map(str, e["loc"])) for e in answer.json()["detail"])


@pytest.mark.parametrize("url", [
    "ssh://[-oProxyCommand=touch%20/tmp/pwned]/x", "ssh://git@[-oProxyCommand=x]:22/x",
    "ssh://[host]/x", "ssh://[::1]:22/-x", "ext::sh -c touch% /tmp/pwned", "git@host:-x",
    "https://-host/x", "https://host/x\n",
])
async def test_option_injection_in_a_git_url_is_refused_by_the_schema(client, shop, url):
    body = {**IMAGE_BODY, "source": {"kind": "git", "url": url}}
    answer = await client.post(DEPLOY, json=body, headers=shop.headers)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list), detail  # the model refused it, before any library code
    assert detail[0]["loc"][-1] == "url"
    assert "not a git URL" in detail[0]["msg"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
async def test_a_body_neither_json_nor_an_archive_is_415_naming_the_accepted_types(
        client, shop, content_type):
    headers = {**shop.headers, **({"Content-Type": content_type} if content_type else {})}
    answer = await client.post(DEPLOY, content=json.dumps(IMAGE_BODY), headers=headers)
    assert answer.status_code == 415, answer.text
    detail = answer.json()["detail"]
    assert "application/json" in detail
    assert all(kind in detail for kind in ("application/gzip", "application/x-tar",
                                           "application/zip"))


async def test_json_with_a_charset_is_still_json(client, shop):
    answer = await client.post(DEPLOY, content=json.dumps(IMAGE_BODY), headers={
        **shop.headers, "Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 422
    assert "no active server" in answer.json()["detail"]


@pytest.mark.parametrize(("url", "ref", "reason"), [
    ("{repo}", "nope", "fatal: couldn't find remote ref nope"),
    ("{repo}-missing", None, "does not appear to be a git repository"),
])
async def test_a_failed_git_fetch_is_an_expected_failure_with_gits_reason(
        client, shop, platform, settings, tmp_path, caplog, url, ref, reason):
    settings.git_allow_local = True
    repo = _one_commit_repository(tmp_path / "repo")
    await add_server(platform, shop, closed_port())
    body = {**IMAGE_BODY, "source": {"kind": "git", "url": url.format(repo=repo), "ref": ref}}
    with caplog.at_level(logging.INFO, logger="dockyard"):
        answer = await client.post(DEPLOY, json=body, headers=shop.headers)
    done = events_of(answer)[-1]
    assert (done["kind"], done["status"]) == ("done", "failed")
    assert reason in done["error"]
    deploy_logs = [r for r in caplog.records if r.name.startswith("dockyard.deploy")]
    assert [r.exc_info for r in deploy_logs if r.exc_info] == [], "no traceback"
    [failure] = [r for r in deploy_logs if reason in r.getMessage()]  # one line
    assert failure.levelno == logging.WARNING
    assert "\n" not in failure.getMessage()


def _one_commit_repository(path: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    path.mkdir()
    (path / "app.py").write_text("print(1)")
    for argv in (["init", "--quiet"], ["add", "app.py"], ["commit", "--quiet", "-m", "one"]):
        subprocess.run(["git", *argv], cwd=path, env=env, check=True, capture_output=True)
    return path


@pytest.mark.parametrize(("url", "status", "fragment"), [
    ("/srv/other-teams-repo", 403, "control plane's own disk"),  # well formed, not allowed
    ("file:///etc", 403, "control plane's own disk"),
    ("nothing-like-a-url", 422, "not a git URL"),
])
async def test_git_urls_that_are_not_remote_repositories_are_refused(client, shop, url, status,
                                                                     fragment):
    body = {**IMAGE_BODY, "source": {"kind": "git", "url": url}}
    answer = await client.post(DEPLOY, json=body, headers=shop.headers)
    assert answer.status_code == status, answer.text
    assert fragment in str(answer.json()["detail"])


async def test_deploy_parameters_are_validated(client, shop):
    body = {**IMAGE_BODY, "params": {"port": 0, "health_path": "no-slash"}}
    answer = await client.post(DEPLOY, json=body, headers=shop.headers)
    assert answer.status_code == 422
    fields = {e["loc"][-1] for e in answer.json()["detail"]}
    assert fields == {"port", "health_path"}


async def test_a_viewer_may_not_deploy(client, shop, member_of):
    viewer = await member_of(Role.VIEWER)
    answer = await client.post(DEPLOY, json=IMAGE_BODY, headers=viewer.headers)
    assert answer.status_code == 403


async def test_an_archive_needs_its_project_and_service(client, shop):
    answer = await client.post(DEPLOY, content=tar_gz({"app.py": b"print(1)"}),
                               headers={**shop.headers, "Content-Type": "application/gzip"})
    assert answer.status_code == 422
    assert "project and service" in answer.json()["detail"]
    bad = await client.post(DEPLOY, content=tar_gz({"app.py": b"print(1)"}),
                            params={"project": "shop", "service": "web", "grace_seconds": "-1"},
                            headers={**shop.headers, "Content-Type": "application/gzip"})
    assert bad.status_code == 422
    assert "grace_seconds" in bad.json()["detail"]


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil", "a/../../evil"])
async def test_a_hostile_archive_is_refused_before_anything_exists(
        client, shop, platform, settings, name):
    await add_server(platform, shop, closed_port())
    answer = await client.post(
        DEPLOY, params={"project": "shop", "service": "web"},
        content=tar_gz({"app.py": b"print(1)", name: b"owned"}),
        headers={**shop.headers, "Content-Type": "application/gzip"})
    assert answer.status_code == 422, answer.text
    assert "evil" in answer.json()["detail"]
    history = await client.get(HISTORY, params={"project": "shop", "service": "web"},
                               headers=shop.headers)
    assert history.json() == []
    builds = settings.data_dir / "builds"
    assert not builds.exists() or list(builds.iterdir()) == []


async def test_an_archive_over_the_limit_gets_413(shop, platform, settings):
    settings.max_archive_bytes = 4096
    big = tar_gz({"blob": os.urandom(20_000)})
    assert len(big) > 4096
    app = create_app(settings, platform)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://dockyard.test") as http:
        query = {"project": "shop", "service": "web"}
        headers = {**shop.headers, "Content-Type": "application/gzip"}
        declared = await http.post(DEPLOY, params=query, content=big, headers=headers)
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start:start + 1000]

        await add_server(platform, shop, closed_port())
        streamed = await http.post(DEPLOY, params=query, content=chunks(), headers=headers)
        assert streamed.status_code == 413, streamed.text
        assert "DOCKYARD_MAX_ARCHIVE_BYTES" in streamed.json()["detail"]
    assert list((settings.data_dir / "builds").iterdir()) == []


async def test_a_deploy_to_an_unreachable_agent_fails_with_the_reason_and_frees_the_service(
        client, shop, platform):
    await add_server(platform, shop, closed_port())
    answer = await client.post(DEPLOY, json=IMAGE_BODY, headers=shop.headers)
    assert answer.status_code == 200
    events = events_of(answer)
    assert events[0]["kind"] == "deployment"
    assert events[0]["servers"] == ["node1"]
    done = events[-1]
    assert (done["kind"], done["status"]) == ("done", "failed")
    assert "node agent could not be reached" in done["error"]
    deployment_id = answer.headers["X-Deployment-ID"]
    assert {e["deployment_id"] for e in events} == {deployment_id}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    history = (await client.get(HISTORY, params={"project": "shop", "service": "web"},
                                headers=shop.headers)).json()
    assert [(h["id"], h["status"], h["live"]) for h in history] == [
        (deployment_id, "failed", False)]
    assert history[0]["image_tag"].endswith(f":deploy_{deployment_id[:8]}")
    again = await client.post(DEPLOY, json=IMAGE_BODY, headers=shop.headers)
    assert events_of(again)[-1]["kind"] == "done"


async def test_events_replay_and_resume_after_last_event_id(client, shop, platform, stranger):
    await add_server(platform, shop, closed_port())
    first = await client.post(DEPLOY, json=IMAGE_BODY, headers=shop.headers)
    everything = events_of(first)
    path = f"/api/v1/infra/deployments/{first.headers['X-Deployment-ID']}/events"
    replay = events_of(await client.get(path, headers=shop.headers))
    assert replay == everything
    resumed = events_of(await client.get(path, headers={**shop.headers, "Last-Event-ID": "2"}))
    assert resumed == everything[2:]
    by_prefix = path.replace(first.headers["X-Deployment-ID"], first.headers["X-Deployment-ID"][:8])
    assert events_of(await client.get(by_prefix, headers=shop.headers)) == everything
    assert (await client.get(path, headers=stranger.headers)).status_code == 404


async def test_a_second_deploy_of_a_service_is_refused_while_one_runs(
        client, shop, platform, silent_agent):
    await add_server(platform, shop, silent_agent)
    runner = client._transport.app.state.deploys  # the app's own runner
    first = await deployments.start_deploy(platform, runner, shop.actor(Role.OWNER),
                                           DeployRequest.model_validate(IMAGE_BODY))
    try:
        answer = await client.post(DEPLOY, json=IMAGE_BODY, headers=shop.headers)
        assert answer.status_code == 409
        detail = answer.json()["detail"]
        assert f"being deployed by deployment {first[:8]}" in detail
        assert f"dockyard deployments follow {first[:8]}" in detail
        rollback = await client.post("/api/v1/infra/deployments/rollback", headers=shop.headers,
                                     json={"project": "shop", "service": "web"})
        assert rollback.status_code == 409
    finally:
        await runner.shutdown(0)


async def test_two_deploys_at_the_same_instant_start_exactly_one(client, shop, platform,
                                                                 silent_agent):
    await add_server(platform, shop, silent_agent)
    runner = client._transport.app.state.deploys
    request = DeployRequest.model_validate(IMAGE_BODY)
    results = await asyncio.gather(
        *(deployments.start_deploy(platform, runner, shop.actor(Role.OWNER), request)
          for _ in range(4)), return_exceptions=True)
    try:
        started = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if not isinstance(r, str)]
        assert len(started) == 1
        assert all(getattr(r, "status_code", None) == 409 for r in refused)
    finally:
        await runner.shutdown(0)


async def test_rollback_without_an_earlier_release_says_so(client, shop, platform):
    await add_server(platform, shop, closed_port())
    answer = await client.post("/api/v1/infra/deployments/rollback", headers=shop.headers,
                               json={"project": "shop", "service": "web"})
    assert answer.status_code == 422
    assert "no earlier release" in answer.json()["detail"]
    missing = await client.post("/api/v1/infra/deployments/rollback", headers=shop.headers,
                                json={"project": "shop", "service": "web", "release": "abcd"})
    assert missing.status_code == 404


async def test_saved_deploy_configs_shape_the_deployment(client, shop, platform):
    saved = await client.post("/api/v1/infra/deploy-configs", headers=shop.headers, json={
        "name": "slow-start", "service": {"project": "shop", "service": "web"},
        "params": {"health_path": "/healthz", "health_attempts": 5, "grace_seconds": 0}})
    assert saved.status_code == 201, saved.text
    listed = (await client.get("/api/v1/infra/deploy-configs", headers=shop.headers)).json()
    assert [(c["name"], c["service"], c["params"]["health_path"]) for c in listed] == [
        ("slow-start", "web", "/healthz")]
    await add_server(platform, shop, closed_port())
    body = {**IMAGE_BODY, "config_name": "slow-start", "params": {"port": 9000}}
    answer = await client.post(DEPLOY, json=body, headers=shop.headers)
    history = (await client.get(HISTORY, params={"project": "shop", "service": "web"},
                                headers=shop.headers)).json()
    params = history[0]["config"]["params"]
    assert (params["health_path"], params["health_attempts"], params["port"]) == (
        "/healthz", 5, 9000)
    assert history[0]["config"]["hosts"] == ["web.shop.localhost"]
    assert answer.status_code == 200


async def test_a_config_saved_for_one_service_is_refused_for_another(client, shop, platform):
    created = await client.post(f"{P}/shop/services", json={"name": "api"}, headers=shop.headers)
    assert created.status_code == 201, created.text
    for name, service in (("web-only", {"project": "shop", "service": "web"}), ("any", None)):
        saved = await client.post("/api/v1/infra/deploy-configs", headers=shop.headers, json={
            "name": name, "service": service, "params": {"port": 9000}})
        assert saved.status_code == 201, saved.text
    await add_server(platform, shop, closed_port())
    body = {**IMAGE_BODY, "service": "api", "config_name": "web-only"}
    refused = await client.post(DEPLOY, json=body, headers=shop.headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (
        "deploy config 'web-only' is saved for service shop/web, not shop/api; use a config "
        "saved for this service or for any service (saved without one)")
    history = await client.get(HISTORY, params={"project": "shop", "service": "api"},
                               headers=shop.headers)
    assert history.json() == []
    shared = await client.post(DEPLOY, json={**body, "config_name": "any"}, headers=shop.headers)
    assert shared.status_code == 200, shared.text
    history = (await client.get(HISTORY, params={"project": "shop", "service": "api"},
                                headers=shop.headers)).json()
    assert history[0]["config"]["params"]["port"] == 9000
