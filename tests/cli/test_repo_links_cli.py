"""`dockyard git link|show|deliveries|rotate-secret|unlink` as a user runs them: the real
console script against a real control plane, with a signed delivery sent in between."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.hooks import forges
from tests.live import Live, ok, ok_json, one_line_error

REPO = "https://git.example.com/acme/shop.git"
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


def _secret(output: str) -> str:
    found = re.search(r"^\s+secret\s+(\S+)$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def test_link_prints_the_secret_once_and_deliveries_show_what_came(live: Live,
                                                                   tmp_path: Path) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop"))
    token_file = tmp_path / "token"
    token_file.write_text("ci-bot:very-private\n")
    linked = ok(live.run("git", "link", "-p", "shop", "-s", "web", "--repo", REPO,
                         "--branch", "main", "--token-file", str(token_file)))
    assert f"{live.url}/api/v1/hooks/github" in linked
    secret = _secret(linked)
    shown = ok_json(live.run("git", "show", "-p", "shop", "-s", "web", "--json"))
    assert (shown["repo_url"], shown["branch"], shown["credential"]) == (REPO, "main", "token")
    assert secret not in str(shown)
    assert "very-private" not in str(shown)

    sent = forges.github("push", forges.github_push(REPO, "refs/heads/dev", SHA), secret)
    answer = httpx.post(f"{live.url}/api/v1/hooks/github", content=sent.body,
                        headers=sent.headers)
    assert answer.status_code == 200, answer.text
    listed = ok(live.run("git", "deliveries", "-p", "shop", "-s", "web"))
    assert "ignored: a push to 'dev' (this link deploys 'main')" in listed
    assert ok_json(live.run("git", "deliveries", "-p", "shop", "-s", "web", "--json"))[0][
        "delivery_id"] == sent.delivery

    rotated = _secret(ok(live.run("git", "rotate-secret", "-p", "shop", "-s", "web")))
    assert rotated != secret
    resent = httpx.post(f"{live.url}/api/v1/hooks/github", content=sent.body,
                        headers=sent.headers)
    assert resent.status_code == 401
    ok(live.run("git", "unlink", "-p", "shop", "-s", "web"))
    one_line_error(live.run("git", "show", "-p", "shop", "-s", "web"), "not found")


def test_link_errors_are_one_line(live: Live, tmp_path: Path) -> None:
    ok(live.run("projects", "create", "shop"))
    ok(live.run("services", "create", "web", "-p", "shop"))
    key, token = tmp_path / "key", tmp_path / "token"
    key.write_text("not a key")
    token.write_text("t")
    one_line_error(live.run("git", "link", "-p", "shop", "-s", "web", "--repo", REPO,
                            "--token-file", str(token), "--deploy-key-file", str(key)),
                   "not both")
    one_line_error(live.run("git", "link", "-p", "shop", "-s", "web", "--repo", REPO,
                            "--deploy-key-file", str(key)), "private key")
    one_line_error(live.run("git", "link", "-p", "shop", "-s", "web", "--repo", "-x"),
                   "not a git URL")
