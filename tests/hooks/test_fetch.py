"""Fetching exactly a webhook's commit from a real git server (git http-backend, protocol v2,
private behind Basic auth) with a link's token: by its full sha directly, by a prefix
(Bitbucket's) on its branch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.deploy import sources
from dockyard.deploy.sources import GitCredential, GitFailed
from tests.fakes.git_server import GitServer

TOKEN = "ci-bot:s3cret-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    served = GitServer(tmp_path / "repos", [("ci-bot", "s3cret-token")]).start()
    served.create("app")
    yield served
    served.stop()


def fetch(server: GitServer, dest: Path, commit: str, token: str | None = TOKEN) -> str:
    credential = GitCredential("token", token) if token else None
    return sources.fetch_git(server.url_of("app"), "main", dest, commit=commit,
                             credential=credential)


def test_an_older_commit_is_fetched_by_its_sha_in_one_protocol_v2_fetch(server, tmp_path):
    first = server.commit("app", {"a.txt": "one"})
    server.commit("app", {"a.txt": "two"})
    assert fetch(server, tmp_path / "w", first) == first
    assert (tmp_path / "w" / "a.txt").read_text() == "one"
    assert not (tmp_path / "w" / ".git").exists()
    adverts = [r for r in server.requests if r.endswith("info/refs?service=git-upload-pack")]
    assert len(adverts) == 1, server.requests  # no second fetch of the branch
    assert set(server.protocols) == {"version=2"}


def test_a_short_sha_is_found_on_the_branch(server, tmp_path):
    first = server.commit("app", {"a.txt": "one"})
    server.commit("app", {"a.txt": "two"})
    assert fetch(server, tmp_path / "w", first[:12]) == first
    assert (tmp_path / "w" / "a.txt").read_text() == "one"


def test_a_commit_that_is_not_there_fails_naming_it(server, tmp_path):
    server.commit("app", {"a.txt": "one"})
    with pytest.raises(GitFailed, match="could not find commit abcdef123456 of ref 'main'"):
        fetch(server, tmp_path / "w", "abcdef123456")


@pytest.mark.parametrize("token", [None, "ci-bot:wrong", "s3cret-token"])
def test_without_the_right_token_the_private_repository_is_refused(server, tmp_path, token):
    sha = server.commit("app", {"a.txt": "one"})
    with pytest.raises(GitFailed, match="could not fetch ref 'main'") as caught:
        fetch(server, tmp_path / "w", sha, token)
    assert "s3cret" not in str(caught.value)


def test_the_token_travels_in_the_environment_not_the_command_line():
    env = sources.token_env("x-token-auth:abc")
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == "Authorization: Basic eC10b2tlbi1hdXRoOmFiYw=="
    assert sources.token_env("abc")["GIT_CONFIG_VALUE_0"].endswith(
        "eC1hY2Nlc3MtdG9rZW46YWJj")  # x-access-token:abc
    assert "abc" not in " ".join(sources.git_fetch_argv(Path("/w"), "https://h/r.git", "main"))


def test_a_deploy_key_lives_in_a_private_file_only_while_git_runs():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    with sources.credential_env(GitCredential("deploy_key", key)) as env:
        key_file = Path(env["GIT_SSH_COMMAND"].split()[2])
        assert key_file.read_text() == key + "\n"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert "-o IdentitiesOnly=yes" in env["GIT_SSH_COMMAND"]
    assert not key_file.exists()
