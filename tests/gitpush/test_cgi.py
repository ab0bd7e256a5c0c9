"""The CGI exchange with git http-backend, the Basic credential and the hook's rules: pure."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from dockyard.gitpush import repos
from dockyard.gitpush.access import basic_password
from dockyard.gitpush.cgi import (
    CgiHead,
    GitRequest,
    NotSmartGit,
    backend_env,
    git_service,
    parse_head,
    split_head,
)
from dockyard.gitpush.context import PushContext
from dockyard.gitpush.hook import RefUpdate, archive_argv, deploy_query, parse_updates, refusal

OLD, NEW, ZERO = "a" * 40, "b" * 40, "0" * 40
CONTEXT = PushContext(api_url="http://127.0.0.1:8000", token="dy_secret", workspace_id="w" * 32,
                      project="shop", service="web", branch="main")


@pytest.mark.parametrize(("method", "rest", "query", "service"), [
    ("GET", "info/refs", "service=git-upload-pack", "git-upload-pack"),
    ("GET", "info/refs", "service=git-receive-pack", "git-receive-pack"),
    ("POST", "git-upload-pack", "", "git-upload-pack"),
    ("POST", "git-receive-pack", "", "git-receive-pack"),
])
def test_the_smart_protocol_requests_name_their_service(method, rest, query, service):
    assert git_service(GitRequest(method, rest, query)) == service


@pytest.mark.parametrize(("method", "rest", "query"), [
    ("GET", "info/refs", ""),  # the dumb protocol
    ("GET", "HEAD", ""),
    ("GET", "objects/info/packs", ""),
    ("GET", "info/refs", "service=git-upload-pack&service=git-receive-pack"),
    ("GET", "info/refs", "service=git-upload-archive"),
    ("GET", "git-receive-pack", ""),
    ("POST", "info/refs", "service=git-receive-pack"),
    ("POST", "git-upload-archive", ""),
])
def test_anything_else_is_refused(method, rest, query):
    with pytest.raises(NotSmartGit, match="only git's smart HTTP protocol"):
        git_service(GitRequest(method, rest, query))


def test_the_backend_env_of_a_fetch():
    request = GitRequest("GET", "info/refs", "service=git-upload-pack",
                         git_protocol="version=2")
    assert backend_env(request, Path("/data/git"), "abc.git", "u" * 32, "/usr/bin") == {
        "GIT_PROJECT_ROOT": "/data/git", "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": "/abc.git/info/refs", "REQUEST_METHOD": "GET",
        "QUERY_STRING": "service=git-upload-pack", "REMOTE_USER": "u" * 32, "PATH": "/usr/bin",
        "HOME": "/data/git", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        "HTTP_GIT_PROTOCOL": "version=2",
    }


def test_the_backend_env_of_a_gzipped_push_with_a_length():
    request = GitRequest("POST", "git-receive-pack", "",
                         "application/x-git-receive-pack-request", "1234", "gzip")
    env = backend_env(request, Path("/data/git"), "abc.git", "u", "")
    assert {k: env[k] for k in ("PATH_INFO", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH",
                                "HTTP_CONTENT_ENCODING", "PATH")} == {
        "PATH_INFO": "/abc.git/git-receive-pack", "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/x-git-receive-pack-request", "CONTENT_LENGTH": "1234",
        "HTTP_CONTENT_ENCODING": "gzip", "PATH": "/usr/local/bin:/usr/bin:/bin"}


def test_a_chunked_body_has_no_content_length():
    request = GitRequest("POST", "git-receive-pack", "", "application/x-git-receive-pack-request")
    env = backend_env(request, Path("/r"), "abc.git", "u", "/bin")
    assert "CONTENT_LENGTH" not in env
    assert "HTTP_CONTENT_ENCODING" not in env


def test_the_push_context_travels_in_the_environment_and_back():
    assert CONTEXT.env() == {
        "DOCKYARD_GIT_API_URL": "http://127.0.0.1:8000", "DOCKYARD_GIT_TOKEN": "dy_secret",
        "DOCKYARD_GIT_WORKSPACE_ID": "w" * 32, "DOCKYARD_GIT_PROJECT": "shop",
        "DOCKYARD_GIT_SERVICE": "web", "DOCKYARD_GIT_BRANCH": "main"}
    assert PushContext.from_env({**CONTEXT.env(), "PATH": "/bin"}) == CONTEXT


@pytest.mark.parametrize(("buffer", "parts"), [
    (b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
     (b"Status: 404 Not Found\r\nContent-Type: text/plain", b"nope")),
    (b"Content-Type: x\n\n\x00\x01", (b"Content-Type: x", b"\x00\x01")),
    (b"Content-Type: x\r\n", None),
    (b"", None),
])
def test_the_head_ends_at_the_first_blank_line(buffer, parts):
    assert split_head(buffer) == parts


def test_a_head_without_status_is_200_and_keeps_its_headers():
    head = (b"Expires: Fri, 01 Jan 1980 00:00:00 GMT\r\nPragma: no-cache\r\n"
            b"Content-Type: application/x-git-upload-pack-advertisement")
    assert parse_head(head) == CgiHead(200, [
        ("Expires", "Fri, 01 Jan 1980 00:00:00 GMT"), ("Pragma", "no-cache"),
        ("Content-Type", "application/x-git-upload-pack-advertisement")])


def test_a_status_header_sets_the_status():
    assert parse_head(b"Status: 403 Forbidden\r\nContent-Type: text/plain") == CgiHead(
        403, [("Content-Type", "text/plain")])


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("header", "password"), [
    (_basic("dockyard:dy_abc"), "dy_abc"),
    (_basic("anyone:dy_a:b"), "dy_a:b"),
    ("basic " + base64.b64encode(b"x:tok").decode(), "tok"),
    (_basic("dockyard:"), None),
    (_basic("no-colon"), None),
    ("Basic !!notbase64", None),
    ("Bearer dy_abc", None),
    ("", None),
    (None, None),
])
def test_the_token_is_the_basic_password(header, password):
    assert basic_password(header) == password


def test_the_hook_reads_gits_lines():
    assert parse_updates(f"{OLD} {NEW} refs/heads/main\n{ZERO} {NEW} refs/tags/v1\n") == [
        RefUpdate(OLD, NEW, "refs/heads/main"), RefUpdate(ZERO, NEW, "refs/tags/v1")]


def test_the_configured_branch_deploys():
    assert refusal([RefUpdate(OLD, NEW, "refs/heads/main")], "main") is None
    assert refusal([RefUpdate(ZERO, NEW, "refs/heads/prod")], "prod") is None


@pytest.mark.parametrize("ref", ["refs/heads/dev", "refs/tags/main", "refs/heads/main2"])
def test_another_ref_is_refused_naming_both_branches(ref):
    assert refusal([RefUpdate(OLD, NEW, ref)], "main") == (
        f"refused {ref}: this remote deploys branch 'main' only "
        "(push with `git push dockyard HEAD:main`)")


def test_a_push_with_another_ref_beside_the_branch_is_refused():
    updates = [RefUpdate(OLD, NEW, "refs/heads/main"), RefUpdate(ZERO, NEW, "refs/heads/x")]
    assert refusal(updates, "main") is not None


def test_a_deletion_is_refused():
    assert refusal([RefUpdate(OLD, ZERO, "refs/heads/main")], "main") == (
        "refused: deleting 'main' would not undeploy anything")


def test_the_hook_archives_the_pushed_commit_and_names_it_in_the_deploy():
    assert archive_argv(NEW) == ["git", "archive", "--format=tar", NEW]
    assert deploy_query(CONTEXT, NEW) == {"project": "shop", "service": "web", "commit": NEW,
                                          "ref": "main"}


def test_the_repository_is_the_services_id_and_its_hook_this_interpreter():
    assert repos.repo_name("f" * 32) == "f" * 32 + ".git"
    assert repos.init_argv(Path("/g/x.git")) == ["git", "init", "--bare", "--quiet", "/g/x.git"]
    assert repos.head_argv(Path("/g/x.git"), "prod") == [
        "git", "--git-dir", "/g/x.git", "symbolic-ref", "HEAD", "refs/heads/prod"]
    assert repos.config_argv(Path("/g/x.git"), "receive.denyDeletes", "true") == [
        "git", "--git-dir", "/g/x.git", "config", "receive.denyDeletes", "true"]
    assert repos.hook_script("/venv/bin/python") == (
        "#!/venv/bin/python\nfrom dockyard.gitpush.hook import main\n\n"
        "raise SystemExit(main())\n")


def test_ensure_repo_makes_a_bare_repository_with_an_executable_hook_once(tmp_path):
    first = repos.ensure_repo(tmp_path / "git", "f" * 32, "main")
    again = repos.ensure_repo(tmp_path / "git", "f" * 32, "prod")
    assert first == again == tmp_path / "git" / ("f" * 32 + ".git")
    assert (first / "HEAD").read_text() == "ref: refs/heads/prod\n"
    hook = first / "hooks" / "pre-receive"
    assert hook.stat().st_mode & 0o777 == 0o755
    config = subprocess.run(["git", "--git-dir", str(first), "config", "--get-regexp", "."],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert {"receive.denydeletes true", "http.receivepack true",
            "http.getanyfile false"} <= set(config)
