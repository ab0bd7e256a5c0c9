"""Webhooks through the API: a service linked to a repository served by a real git server
(`git http-backend`, private behind Basic auth), each forge's signed push deploying the pushed
commit fetched with the link's token; bad signatures, unknown repositories, other branches,
tags, deletions and redeliveries starting nothing."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dockyard.core import deployments, hook_queue
from dockyard.core.platform import Limiters
from dockyard.models.enums import Role
from dockyard.models.tables import Deployment, HookDelivery, RepoLink
from tests import sqlite_only
from tests.api.test_deploys import add_server, closed_port, events_of, silent_agent
from tests.fakes.git_server import GitServer, SshGitServer
from tests.hooks import forges
from tests.hooks.forges import Sent

database_url = sqlite_only.database_url  # nothing here depends on the database kind

LINK = "/api/v1/projects/shop/services/web/repo-link"
TOKEN = "glpat-private-token-1"
__all__ = ["silent_agent"]  # a fixture of these tests too


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    server = GitServer(tmp_path / "repos", [("x-access-token", TOKEN)]).start()
    server.create("shop")
    yield server
    server.stop()


@pytest.fixture
async def linked(client, shop, platform, git_server) -> dict[str, Any]:
    """shop/web linked to the private repository with a token, on a server whose agent is
    unreachable (a deployment fetches, then fails at the build)."""
    await add_server(platform, shop, closed_port())
    body = {"repo_url": git_server.url_of("shop"), "branch": "main", "token": TOKEN}
    answer = await client.put(LINK, json=body, headers=shop.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def send(client, sent: Sent):
    return await client.post(f"/api/v1/hooks/{sent.provider}", content=sent.body,
                             headers=sent.headers)


async def deployments_of(platform) -> list[Deployment]:
    async def tx(s):
        return list(await s.scalars(select(Deployment)))
    return await platform.db.read(tx)


async def follow(client, headers, deployment_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/infra/deployments/{deployment_id}/events",
                              headers=headers)
    return events_of(answer)


def pushes(url: str, secret: str, sha: str, ref: str = "refs/heads/main") -> list[Sent]:
    short = sha[:12]  # Bitbucket's commit links use a prefix too
    return [
        forges.github("push", forges.github_push(url, ref, sha), secret),
        forges.gitlab("Push Hook", forges.gitlab_push(url, ref, sha), secret),
        forges.gitea("push", forges.gitea_push(url, ref, sha), secret),
        forges.bitbucket("repo:push", forges.bitbucket_push(
            url, ref.removeprefix("refs/heads/"), short), secret),
    ]


async def test_the_link_answer_shows_the_secret_once_and_never_the_token(client, shop, linked):
    assert len(linked["secret"]) >= 40
    assert linked["credential"] == "token"
    assert linked["webhook_urls"]["github"].endswith("/api/v1/hooks/github")
    shown = await client.get(LINK, headers=shop.headers)
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    assert TOKEN not in shown.text
    assert TOKEN not in json.dumps(linked)


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["github", "gitlab", "gitea", "bitbucket"])
async def test_a_signed_push_deploys_the_pushed_commit_of_the_private_repository(
        client, shop, platform, git_server, linked, index):
    first = git_server.commit("shop", {"app.py": "print(1)"})
    git_server.commit("shop", {"app.py": "print(2)"})  # the branch moved on since
    sent = pushes(git_server.url_of("shop"), linked["secret"], first)[index]
    answer = await send(client, sent)
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["results"]
    assert (result["service"], result["outcome"]) == ("web", "deployed")
    events = await follow(client, shop.headers, result["deployment_id"])
    checked_out = [e for e in events if e.get("commit")]
    assert checked_out[0]["commit"] == first  # exactly that commit, not the branch's head
    assert events[-1]["status"] == "failed"  # the agent is unreachable: fetched, not built
    [row] = await deployments_of(platform)
    assert row.source["commit"] == first[:len(row.source["commit"])]
    assert row.source["url"] == git_server.url_of("shop")
    assert TOKEN not in json.dumps(row.source)


async def test_a_bad_signature_gets_401_and_starts_and_records_nothing(
        client, platform, git_server, linked):
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    for sent in pushes(git_server.url_of("shop"), "not-the-secret", sha):
        answer = await send(client, sent)
        assert answer.status_code == 401, sent.provider
        assert "secret" in answer.json()["detail"]
    assert await deployments_of(platform) == []
    assert await _deliveries(platform) == []


async def test_an_unknown_repository_gets_404_and_starts_nothing(client, platform, linked):
    sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
    sent = pushes("https://git.example.com/other/repo.git", linked["secret"], sha)[0]
    answer = await send(client, sent)
    assert answer.status_code == 404
    assert "git.example.com/other/repo" in answer.json()["detail"]
    assert await deployments_of(platform) == []


async def test_a_redelivery_is_answered_and_starts_nothing(
        client, shop, platform, git_server, linked):
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    sent = pushes(git_server.url_of("shop"), linked["secret"], sha)[0]
    first = await send(client, sent)
    again = await send(client, sent)
    assert again.status_code == 200
    [result] = again.json()["results"]
    assert result["outcome"] == "duplicate"
    assert "already handled" in result["detail"]
    await follow(client, shop.headers, first.json()["results"][0]["deployment_id"])
    assert len(await deployments_of(platform)) == 1
    listed = await client.get(f"{LINK}/deliveries", headers=shop.headers)
    assert [d["outcome"] for d in listed.json()] == ["deployed"]
    assert listed.json()[0]["delivery_id"] == sent.delivery


@pytest.mark.parametrize(("ref", "fragment"), [
    ("refs/heads/dev", "a push to 'dev' (this link deploys 'main')"),
    ("refs/tags/v1.0", "a tag was pushed (this link deploys 'main')"),
])
async def test_other_branches_and_tags_are_ignored(client, shop, platform, git_server, linked,
                                                   ref, fragment):
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    for sent in pushes(git_server.url_of("shop"), linked["secret"], sha, ref)[:3]:
        [result] = (await send(client, sent)).json()["results"]
        assert (result["outcome"], result["detail"]) == ("ignored", f"ignored: {fragment}")
    assert await deployments_of(platform) == []
    listed = (await client.get(f"{LINK}/deliveries", headers=shop.headers)).json()
    assert [d["outcome"] for d in listed] == ["ignored"] * 3


async def test_a_deleted_branch_and_a_ping_are_ignored(client, platform, git_server, linked):
    url, secret = git_server.url_of("shop"), linked["secret"]
    deleted = forges.github("push", forges.github_push(
        url, "refs/heads/main", "", deleted=True), secret)
    ping = forges.github("ping", forges.github_ping(url), secret)
    for sent, fragment in ((deleted, "branch 'main' was deleted"), (ping, "'ping' event")):
        [result] = (await send(client, sent)).json()["results"]
        assert result["outcome"] == "ignored"
        assert fragment in result["detail"]
    assert await deployments_of(platform) == []


@pytest.fixture
def held_agent() -> Iterator[socket.socket]:
    """An agent port that takes connections and answers none until it is closed (then every
    call fails at once): a deployment there stays active until the test lets it end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener
    listener.close()


async def _link_on(client, shop, platform, git_server, agent: socket.socket) -> str:
    await add_server(platform, shop, agent.getsockname()[1])
    body = {"repo_url": git_server.url_of("shop"), "token": TOKEN}
    return str((await client.put(LINK, json=body, headers=shop.headers)).json()["secret"])


async def _push(client, url: str, secret: str, sha: str) -> tuple[Sent, dict[str, Any]]:
    sent = forges.github("push", forges.github_push(url, "refs/heads/main", sha), secret)
    answer = await send(client, sent)
    assert answer.status_code == 200, answer.text
    return sent, answer.json()["results"][0]


async def _listed(client, shop) -> list[dict[str, Any]]:
    """The deliveries, oldest first."""
    return list(reversed((await client.get(f"{LINK}/deliveries", headers=shop.headers)).json()))


async def _commits(client, shop, deployment_id: str) -> list[str]:
    return [e["commit"] for e in await follow(client, shop.headers, deployment_id)
            if e.get("commit")]


async def test_a_push_during_a_deploy_waits_and_deploys_its_commit_when_that_ends(
        client, shop, platform, git_server, held_agent):
    runner = client._transport.app.state.deploys
    secret = await _link_on(client, shop, platform, git_server, held_agent)
    url = git_server.url_of("shop")
    _, running = await _push(client, url, secret, git_server.commit("shop", {"a": "1"}))
    assert running["outcome"] == "deployed"
    second = git_server.commit("shop", {"a": "2"})
    _, queued = await _push(client, url, secret, second)
    assert queued["outcome"] == "queued", queued
    assert queued["deployment_id"] is None
    assert (f"queued: shop/web is being deployed by deployment {running['deployment_id'][:8]}"
            in queued["detail"])
    assert [d["outcome"] for d in await _listed(client, shop)] == ["deployed", "queued"]

    held_agent.close()  # the running deployment fails and ends
    await runner.wait_idle()
    first_row, second_row = await _listed(client, shop)
    assert (first_row["outcome"], second_row["outcome"]) == ("deployed", "deployed")
    assert second_row["deployment_id"] not in (None, running["deployment_id"])
    assert await _commits(client, shop, second_row["deployment_id"]) == [second]
    assert len(await deployments_of(platform)) == 2


async def test_of_two_queued_pushes_only_the_newest_deploys(
        client, shop, platform, git_server, held_agent):
    runner = client._transport.app.state.deploys
    secret = await _link_on(client, shop, platform, git_server, held_agent)
    url = git_server.url_of("shop")
    await _push(client, url, secret, git_server.commit("shop", {"a": "1"}))
    _, older = await _push(client, url, secret, git_server.commit("shop", {"a": "2"}))
    newest = git_server.commit("shop", {"a": "3"})
    sent, newer = await _push(client, url, secret, newest)
    assert (older["outcome"], newer["outcome"]) == ("queued", "queued")

    held_agent.close()
    await runner.wait_idle()
    listed = await _listed(client, shop)
    assert [d["outcome"] for d in listed] == ["deployed", "superseded", "deployed"]
    assert listed[1]["detail"] == (f"superseded by the newer delivery {sent.delivery} "
                                   f"(commit {newest})")
    assert listed[1]["deployment_id"] is None
    assert await _commits(client, shop, listed[2]["deployment_id"]) == [newest]
    assert len(await deployments_of(platform)) == 2


async def test_what_was_queued_while_no_process_ran_is_acted_on_once_at_startup(
        client, shop, platform, git_server, held_agent):
    secret = await _link_on(client, shop, platform, git_server, held_agent)
    url = git_server.url_of("shop")
    await _push(client, url, secret, git_server.commit("shop", {"a": "1"}))
    waiting = git_server.commit("shop", {"a": "2"})
    await _push(client, url, secret, waiting)
    await client._transport.app.state.deploys.shutdown(0)  # the process dies mid-deploy
    held_agent.close()
    unwatched = deployments.new_runner(platform)  # takes the deployment over, ends it
    await unwatched.recover()
    await unwatched.wait_idle()
    assert [d["outcome"] for d in await _listed(client, shop)] == ["deployed", "queued"]

    replicas = [deployments.new_runner(platform) for _ in range(2)]
    try:
        await asyncio.gather(*(hook_queue.resume(platform, r) for r in replicas))
        for replica in replicas:
            await replica.wait_idle()
    finally:
        for replica in replicas:
            await replica.shutdown(0)
    last = (await _listed(client, shop))[-1]
    assert last["outcome"] == "deployed"
    assert await _commits(client, shop, last["deployment_id"]) == [waiting]
    assert len(await deployments_of(platform)) == 2


async def test_a_bitbucket_push_of_several_refs_deploys_the_links_branch(
        client, shop, platform, git_server, linked):
    main = git_server.commit("shop", {"a": "1"})
    other = git_server.commit("shop", {"a": "2"}, branch="dev")
    payload = forges.bitbucket_push(git_server.url_of("shop"), "dev", other[:12])
    payload["push"]["changes"] += forges.bitbucket_push(
        git_server.url_of("shop"), "main", main[:12])["push"]["changes"]
    sent = forges.bitbucket("repo:push", payload, linked["secret"])
    [result] = (await send(client, sent)).json()["results"]
    assert result["outcome"] == "deployed", result
    assert await _commits(client, shop, result["deployment_id"]) == [main]
    [row] = await _deliveries(platform)
    assert (row.ref, row.commit) == ("main", main[:12])


async def test_rotating_the_secret_retires_the_old_one(client, shop, platform, git_server,
                                                       linked):
    rotated = await client.post(f"{LINK}/rotate-secret", headers=shop.headers)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != linked["secret"]
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    old = pushes(git_server.url_of("shop"), linked["secret"], sha)[0]
    assert (await send(client, old)).status_code == 401
    new = pushes(git_server.url_of("shop"), rotated.json()["secret"], sha, "refs/heads/x")[0]
    assert (await send(client, new)).status_code == 200


async def test_without_the_token_the_private_repository_cannot_be_fetched(
        client, shop, platform, git_server):
    await add_server(platform, shop, closed_port())
    body = {"repo_url": git_server.url_of("shop")}
    secret = (await client.put(LINK, json=body, headers=shop.headers)).json()["secret"]
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    [result] = (await send(client, pushes(git_server.url_of("shop"), secret, sha)[0])).json()[
        "results"]
    events = await follow(client, shop.headers, result["deployment_id"])
    assert "could not read Username" in events[-1]["error"]


async def test_a_malformed_delivery_is_a_400_and_an_unknown_provider_a_422(client, linked):
    sent = forges.github("push", {}, linked["secret"])
    answer = await client.post("/api/v1/hooks/github", content=b"{nope", headers=sent.headers)
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["detail"]
    answer = await client.post("/api/v1/hooks/sourcehut", content=b"{}")
    assert answer.status_code == 422


async def test_viewers_read_links_and_members_change_them(client, shop, linked, member_of):
    viewer = await member_of(Role.VIEWER)
    assert (await client.get(LINK, headers=viewer.headers)).status_code == 200
    assert (await client.get(f"{LINK}/deliveries", headers=viewer.headers)).status_code == 200
    for method, path in (("PUT", LINK), ("POST", f"{LINK}/rotate-secret"), ("DELETE", LINK)):
        answer = await client.request(method, path, headers=viewer.headers,
                                      json={"repo_url": "https://x.example/a.git"})
        assert answer.status_code == 403, (method, path)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"repo_url": "--upload-pack=x"}, "not a git URL"),
    ({"repo_url": "https://u:pw@git.example.com/a.git"}, "not in the URL"),
    ({"repo_url": "https://git.example.com/a.git", "branch": "-x"}, "branch"),
    ({"repo_url": "https://git.example.com/a.git", "token": "t",
      "deploy_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAA\n"
                    "-----END OPENSSH PRIVATE KEY-----\n"}, "not both"),
    ({"repo_url": "https://git.example.com/a.git", "deploy_key": "ssh-ed25519 AAAA"},
     "private key"),
    ({"repo_url": "https://git.example.com/a.git", "preview_dns_credential": "nope"},
     "not a Cloudflare credential"),
    ({"repo_url": "/srv/repo"}, "control plane's own disk"),
])
async def test_links_are_validated(client, shop, body, fragment):
    answer = await client.put(LINK, json=body, headers=shop.headers)
    assert answer.status_code in (403, 422), answer.text
    assert fragment in answer.text


async def test_unlink_forgets_the_link_and_its_deliveries(client, shop, platform, git_server,
                                                         linked):
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    sent = pushes(git_server.url_of("shop"), linked["secret"], sha, "refs/heads/dev")[0]
    assert (await send(client, sent)).status_code == 200
    unlinked = await client.delete(LINK, headers=shop.headers)
    assert (unlinked.status_code, unlinked.json()["previews_removed"]) == (200, [])
    assert (await client.get(LINK, headers=shop.headers)).status_code == 404
    assert (await send(client, sent)).status_code == 404
    assert await _deliveries(platform) == []

    async def links(s):
        return list(await s.scalars(select(RepoLink)))
    assert await platform.db.read(links) == []


async def _deliveries(platform) -> list[HookDelivery]:
    async def tx(s):
        return list(await s.scalars(select(HookDelivery)))
    return await platform.db.read(tx)


@pytest.fixture
def ssh_server(tmp_path: Path, git_server: GitServer) -> Iterator[SshGitServer]:
    server = SshGitServer(git_server.root, tmp_path / "sshd").start()
    yield server
    server.stop()


async def test_a_deploy_key_fetches_over_ssh(client, shop, platform, settings, git_server,
                                             ssh_server):
    await add_server(platform, shop, closed_port())
    url = ssh_server.url_of("shop")
    body = {"repo_url": url, "deploy_key": ssh_server.client_key()}
    answer = await client.put(LINK, json=body, headers=shop.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["credential"] == "deploy_key"
    assert "PRIVATE KEY" not in answer.text
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    sent = forges.gitlab("Push Hook", forges.gitlab_push(url, "refs/heads/main", sha),
                         answer.json()["secret"])
    [result] = (await send(client, sent)).json()["results"]
    assert result["outcome"] == "deployed", result
    events = await follow(client, shop.headers, result["deployment_id"])
    assert [e["commit"] for e in events if e.get("commit")] == [sha]
    assert (settings.data_dir / "ssh" / "known_hosts").read_text().strip()
    assert not _key_files()  # the key lived in a temporary file while git ran


def _key_files() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("dockyard-key-*"))


async def test_a_pull_request_goes_to_previews_which_refuse_when_they_are_off(
        client, shop, platform, git_server, linked):
    sha = git_server.commit("shop", {"app.py": "print(1)"}, branch="feature")
    sent = forges.github("pull_request", forges.github_pull(
        git_server.url_of("shop"), "opened", 7, sha, "feature"), linked["secret"])
    [result] = (await send(client, sent)).json()["results"]
    assert result["outcome"] == "refused"
    assert "previews are off for shop/web" in result["detail"]
    [row] = await _deliveries(platform)
    assert (row.event, row.pull_request, row.ref, row.commit) == (
        "pull_request", 7, "feature", sha)
    assert await deployments_of(platform) == []


async def test_a_delivery_may_be_as_large_as_githubs_and_one_past_the_limit_is_413(
        client, settings, platform, git_server, linked):
    assert settings.max_hook_body_bytes == 25 * 1024 * 1024
    sha = git_server.commit("shop", {"a": "1"})
    payload = forges.github_push(git_server.url_of("shop"), "refs/heads/dev", sha)
    payload["commits"] = [{"message": "x" * 1024}] * (20 * 1024)  # 20 MiB of commit messages
    sent = forges.github("push", payload, linked["secret"])
    assert len(sent.body) > 20 * settings.max_body_bytes
    answer = await send(client, sent)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["results"][0]["outcome"] == "ignored"

    too_big = b" " * (settings.max_hook_body_bytes + 1)
    declared = await client.post("/api/v1/hooks/github", headers=sent.headers, content=too_big)
    assert declared.status_code == 413

    async def chunks():  # no Content-Length: the route stops reading past the limit
        for _ in range(26):
            yield b" " * (1024 * 1024)

    streamed = await client.post("/api/v1/hooks/github", headers=sent.headers, content=chunks())
    assert streamed.status_code == 413
    assert "DOCKYARD_MAX_HOOK_BODY_BYTES" in streamed.json()["detail"]


async def test_deliveries_have_their_own_rate_limit_per_client(client, settings, platform,
                                                              git_server, linked):
    platform.limiters = Limiters.from_settings(settings.model_copy(
        update={"login_limit_per_client": 2, "hook_rate_per_minute": 5}))
    sha = git_server.commit("shop", {"a": "1"})
    unsigned = pushes(git_server.url_of("shop"), "not-the-secret", sha)[0]
    answers = [(await send(client, unsigned)).status_code for _ in range(6)]
    assert answers == [401] * 5 + [429]
    login = {"username": "owner@example.com", "password": "wrong-password-1"}
    assert (await client.post("/api/v1/auth/token", data=login)).status_code == 401


async def test_deployments_act_as_the_linking_member_with_their_role_of_today(
        client, shop, platform, git_server, member_of):
    await add_server(platform, shop, closed_port())
    member = await member_of(Role.MEMBER)
    body = {"repo_url": git_server.url_of("shop"), "token": TOKEN}
    secret = (await client.put(LINK, json=body, headers=member.headers)).json()["secret"]
    sha = git_server.commit("shop", {"app.py": "print(1)"})
    members = f"/api/v1/workspaces/{shop.workspace_id}/members/{member.user_id}"
    url = git_server.url_of("shop")

    demoted = await client.patch(members, json={"role": "viewer"}, headers=shop.headers)
    assert demoted.status_code == 200, demoted.text
    [result] = (await send(client, pushes(url, secret, sha)[0])).json()["results"]
    assert result["outcome"] == "refused"
    assert "your role 'viewer' may not" in result["detail"]

    assert (await client.delete(members, headers=shop.headers)).status_code == 204
    [result] = (await send(client, pushes(url, secret, sha)[0])).json()["results"]
    assert result["outcome"] == "refused"
    assert "no longer in the workspace; link it again" in result["detail"]
    assert await deployments_of(platform) == []
