"""`dockyard git remote` and `dockyard git credential` as a user runs them: the real console
script and a real git against a control plane started with `dockyard up`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dockyard.cli.git import configure_argvs, credential_answer, helper_command, remote_url
from tests.live import DOCKYARD, Live, ok

URL = "http://127.0.0.1:8420/git/shop/web.git"


def test_the_remote_is_the_services_path_under_the_api():
    assert remote_url("http://127.0.0.1:8420/", "shop", "web") == URL


def test_the_cli_becomes_the_only_credential_helper_of_that_url():
    helper = helper_command("/opt/dock yard/bin/dockyard")
    assert helper == "'/opt/dock yard/bin/dockyard' git credential"
    assert configure_argvs("dockyard", URL, helper, exists=False) == [
        ["git", "remote", "add", "dockyard", URL],
        ["git", "config", "--replace-all", f"credential.{URL}.helper", ""],
        ["git", "config", "--add", f"credential.{URL}.helper", helper]]
    assert configure_argvs("prod", URL, helper, exists=True)[0] == [
        "git", "remote", "set-url", "prod", URL]


def test_the_token_goes_to_the_clis_own_api_only():
    asked = "protocol=http\nhost=127.0.0.1:8420\npath=git/shop/web.git\n"
    assert credential_answer(asked, "http://127.0.0.1:8420", "dy_t") == (
        "username=dockyard\npassword=dy_t\n")
    for other in ("protocol=https\nhost=127.0.0.1:8420\n", "protocol=http\nhost=evil.test\n",
                  "protocol=http\nhost=127.0.0.1:8421\n", ""):
        assert credential_answer(other, "http://127.0.0.1:8420", "dy_t") == ""


def _env(live: Live, home: Path, **extra: str) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    return {**live.env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "d@x.test", "GIT_COMMITTER_NAME": "Dev",
            "GIT_COMMITTER_EMAIL": "d@x.test", **extra}


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False, stdin=subprocess.DEVNULL)


def _work_tree(path: Path, env: dict[str, str]) -> None:
    path.mkdir()
    (path / "app.py").write_text("print('hi')\n")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "one"]):
        ok(_run(["git", *args], path, env))


def test_git_remote_adds_the_remote_and_git_authenticates_with_the_cli_login(
        live: Live, tmp_path: Path) -> None:
    env = _env(live, tmp_path / "home")
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop"))
    url = remote_url(live.url, "shop", "web")
    outside = _run([DOCKYARD, "git", "remote", "-p", "shop", "-s", "web"], tmp_path, env)
    assert ok(outside) == f"{url}\n"
    tree = tmp_path / "app"
    _work_tree(tree, env)
    added = ok(_run([DOCKYARD, "git", "remote", "-p", "shop", "-s", "web"], tree, env))
    assert added.splitlines() == [url, "Added remote 'dockyard': git push dockyard main"]
    again = ok(_run([DOCKYARD, "git", "remote", "-p", "shop", "-s", "web"], tree, env))
    assert "Updated remote 'dockyard'" in again
    assert ok(_run(["git", "remote", "get-url", "dockyard"], tree, env)).strip() == url
    helpers = ok(_run(["git", "config", "--get-all", f"credential.{url}.helper"], tree, env))
    assert helpers.splitlines() == ["", f"{DOCKYARD} git credential"]
    assert live.config_token() not in (tree / ".git" / "config").read_text()

    assert ok(_run(["git", "ls-remote", "dockyard"], tree, env)) == ""  # READ: authenticated
    pushed = _run(["git", "push", "dockyard", "main"], tree, env)
    assert pushed.returncode != 0  # authenticated, then the deploy is refused: no server
    assert "remote: deploy refused: " in pushed.stderr
    assert "no active server" in pushed.stderr
    wrong = _run(["git", "ls-remote", "dockyard"], tree, {**env, "DOCKYARD_TOKEN": "dy_wrong"})
    assert wrong.returncode != 0
    assert "Authentication failed" in wrong.stderr
    assert not (Path(env["HOME"]) / ".git-credentials").exists()


def test_git_remote_names_a_missing_service(live: Live, tmp_path: Path) -> None:
    result = _run([DOCKYARD, "git", "remote", "-p", "shop", "-s", "web"], tmp_path,
                  _env(live, tmp_path / "home"))
    assert result.returncode == 1
    assert "'shop' was not found" in result.stderr


def test_the_credential_helper_answers_get_only(live: Live, tmp_path: Path) -> None:
    env = _env(live, tmp_path / "home")
    host = live.url.removeprefix("http://")
    asked = f"protocol=http\nhost={host}\n\n"
    for action, answer in (("get", f"username=dockyard\npassword={live.config_token()}\n"),
                           ("store", ""), ("erase", "")):
        result = subprocess.run([DOCKYARD, "git", "credential", action], input=asked, env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert (result.returncode, result.stdout) == (0, answer)
