"""The `dockyard` CLI as a user runs it: real processes against an API started with `up`
(one for the module; each test is the owner of a workspace of its own)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from dockyard import __version__
from tests.cli.conftest import User
from tests.live import (
    clean_environ,
    dockyard,
    ok,
    ok_json,
    one_line_error,
)
from tests.pg import free_port


def names(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["name"] for row in rows)


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in rows}


def test_login_keeps_an_api_token_not_the_password(user: User, tmp_path: Path) -> None:
    elsewhere = str(tmp_path / "elsewhere")
    login = user.run("login", "--url", user.url, "--email", user.email,
                     input=f"{user.password}\n", XDG_CONFIG_HOME=elsewhere)
    assert f"Logged in to {user.url} as {user.email}" in ok(login)
    config_file = Path(elsewhere) / "dockyard" / "config.json"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    saved = config_file.read_text()
    assert user.password not in saved
    assert json.loads(saved)["token"].startswith("dy_")
    me = ok_json(user.run("whoami", "--json", XDG_CONFIG_HOME=elsewhere))
    assert me["user"]["email"] == user.email
    assert me["via_api_token"] is True

    wrong = user.run("login", "--url", user.url, "--email", user.email,
                     input="not-the-password\n", XDG_CONFIG_HOME=str(tmp_path / "wrong"))
    one_line_error(wrong, "incorrect email or password", "HTTP 401")


def test_projects_and_services_lifecycle(user: User) -> None:
    one_line_error(user.run("projects", "create", "Bad_Name"),
                   "use 1-63 lowercase letters", "HTTP 422")
    one_line_error(user.run("services", "list", "-p", "nowhere"), "'nowhere' was not found")
    one_line_error(user.run("env", "set", "NOEQUALS", "-p", "nowhere", "-s", "web"),
                   "is not KEY=VALUE")

    created = ok_json(user.run("projects", "create", "shop", "--description", "the shop", "--json"))
    assert created["name"] == "shop"
    assert names(ok_json(user.run("projects", "list", "--json"))) == ["shop"]
    assert "the shop" in ok(user.run("projects", "show", "shop"))

    web = user.run("services", "create", "web", "-p", "shop", "--image", "nginx:1.27",
                   "--port", "8080", "--json")
    assert ok_json(web)["config"]["port"] == 8080
    assert names(ok_json(user.run("services", "list", "-p", "shop", "--json"))) == ["web"]
    assert ok_json(user.run("services", "show", "web", "-p", "shop", "--json"))["image"] == (
        "nginx:1.27"
    )
    updated = user.run("services", "update", "web", "-p", "shop", "--image", "nginx:1.28",
                       "--rename", "api", "--json")
    assert (ok_json(updated)["name"], ok_json(updated)["image"]) == ("api", "nginx:1.28")
    assert "nginx:1.28" in ok(user.run("services", "show", "api", "-p", "shop"))
    assert "Deleted service shop/api" in ok(user.run("services", "delete", "api", "-p", "shop"))
    assert ok_json(user.run("services", "list", "-p", "shop", "--json")) == []

    assert "Deleted project shop" in ok(user.run("projects", "delete", "shop", "--yes"))
    assert ok_json(user.run("projects", "list", "--json")) == []
    one_line_error(user.run("projects", "show", "shop"), "project 'shop' was not found")


def test_env_secrets_are_masked_and_history_records_changes(user: User) -> None:
    ok(user.run("projects", "create", "shop"))
    ok(user.run("services", "create", "web", "-p", "shop"))
    where = ("-p", "shop", "-s", "web")
    assert "Set A, B, C" in ok(user.run("env", "set", "A=1", "B=two words", "C=x=y", *where))
    ok(user.run("env", "set", "TOKEN=s3cret-value", "--secret", *where))

    table = ok(user.run("env", "list", *where))
    assert "********" in table
    assert "s3cret-value" not in table
    listed = user.run("env", "list", *where, "--json")
    assert "s3cret-value" not in listed.stdout
    variables = by_key(ok_json(listed))
    assert {k: v["value"] for k, v in variables.items()} == {
        "A": "1", "B": "two words", "C": "x=y", "TOKEN": "********",
    }
    assert variables["TOKEN"]["secret"] is True

    assert "Unset A, B" in ok(user.run("env", "unset", "A", "B", *where))
    assert sorted(by_key(ok_json(user.run("env", "list", *where, "--json")))) == ["C", "TOKEN"]

    history = user.run("history", "--json", "--limit", "100")
    assert "s3cret-value" not in history.stdout
    changes = {(e["action"], e["entity_type"]) for e in ok_json(history)}
    assert {("create", "projects"), ("create", "services"), ("create", "env_vars"),
            ("delete", "env_vars")} <= changes


def test_tokens_workspaces_and_servers(user: User) -> None:
    created = ok_json(user.run("tokens", "create", "ci", "--json"))
    assert created["token"].startswith("dy_")
    assert "ci" in names(ok_json(user.run("tokens", "list", "--json")))
    as_ci = {"DOCKYARD_TOKEN": created["token"]}
    assert ok_json(user.run("whoami", "--json", **as_ci))["via_api_token"] is True
    assert f"Revoked token {created['id']}" in ok(user.run("tokens", "revoke", created["id"]))
    one_line_error(user.run("projects", "list", **as_ci), "HTTP 401")

    assert ok_json(user.run("servers", "list", "--json")) == []
    ok(user.run("credentials", "set", "do", "--provider", "digitalocean", input="dop_v1_x\n"))
    listed = user.run("credentials", "list", "--json")
    assert [(c["name"], c["token"]) for c in ok_json(listed)] == [("do", "********")]
    assert "dop_v1_x" not in listed.stdout

    ok(user.run("projects", "create", "in-default"))
    assert ok_json(user.run("workspaces", "create", "team-b", "--json"))["role"] == "owner"
    assert names(ok_json(user.run("workspaces", "list", "--json"))) == [user.workspace, "team-b"]
    one_line_error(user.run("workspaces", "use", "nowhere"), "no workspace named 'nowhere'")
    # The saved token is bound to the user's first workspace: `use` says how to get one for
    # team-b, and leaves the login working where it was.
    one_line_error(user.run("workspaces", "use", "team-b"),
                   "dockyard login --workspace team-b")
    assert names(ok_json(user.run("projects", "list", "--json"))) == ["in-default"]

    ok(user.run("login", "--url", user.url, "--email", user.email, "--workspace", "team-b",
                input=f"{user.password}\n"))
    assert "Now acting in workspace team-b" in ok(user.run("workspaces", "use", "team-b"))
    ok(user.run("projects", "create", "in-team-b"))
    assert names(ok_json(user.run("projects", "list", "--json"))) == ["in-team-b"]
    assert ok_json(user.run("whoami", "--json"))["workspace_name"] == "team-b"


def test_errors_without_a_reachable_api(tmp_path: Path) -> None:
    env = {**clean_environ(), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    one_line_error(dockyard("projects", "list", env=env), "dockyard login")
    down = {**env, "DOCKYARD_URL": f"http://127.0.0.1:{free_port()}", "DOCKYARD_TOKEN": "dy_x"}
    one_line_error(dockyard("projects", "list", env=down), "dockyard up")
    assert ok(dockyard("--version", env=env)).strip() == f"dockyard {__version__}"


def test_open_hands_the_service_address_to_the_browser(user: User, tmp_path: Path) -> None:
    ok(user.run("projects", "create", "site"))
    ok(user.run("services", "create", "web", "-p", "site"))
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    answer = user.run("open", "-p", "site", "-s", "web", BROWSER=f"{browser} %s")
    assert ok(answer).splitlines()[0] == "http://web.site.localhost/"
    assert opened.read_text() == "http://web.site.localhost/"
    printed = user.run("open", "-p", "site", "-s", "web", "--print", BROWSER="false")
    assert ok(printed).strip() == "http://web.site.localhost/"
    one_line_error(user.run("open", "-p", "site", "-s", "nothing"), "'site/nothing' was not found")
